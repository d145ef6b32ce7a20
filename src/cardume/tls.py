"""Keys, certificates and TLS contexts of the cluster.

Every daemon owns one ECDSA P-256 key (fast handshakes). The key never leaves its node:

* before joining, a node daemon serves a self-signed certificate (:func:`self_signed`) with a
  :func:`server_context` that does not ask for client certificates, and answers only the join
  call;
* the master connects with :func:`pinned_client_context`, checks the node's certificate
  fingerprint itself (:func:`peer_fingerprint`), and issues a certificate for the node's
  *existing* public key with :func:`sign_node_cert`;
* the node then switches its running server to mutual TLS with :func:`reload_server_context`.

From then on every connection is mutual TLS against the cluster CA. Nodes are addressed by IP,
so hostname checking is off: the identity of a peer is the CA's signature.
"""

from __future__ import annotations

import datetime
import functools
import hashlib
import ipaddress
import ssl
from collections.abc import Callable
from typing import TYPE_CHECKING, ParamSpec, TypeVar

from cardume import errors

if TYPE_CHECKING:  # imported on first use at run time: see _crypto
    from cryptography import x509
    from cryptography.exceptions import UnsupportedAlgorithm
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, padding, rsa
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    # The key types TLS can use (and that can sign certificates).
    _PrivateKey = (ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey
                   | ed448.Ed448PrivateKey)
    _PublicKey = (ec.EllipticCurvePublicKey | rsa.RSAPublicKey | ed25519.Ed25519PublicKey
                  | ed448.Ed448PublicKey)

FINGERPRINT_PREFIX = "sha256:"
_ORGANIZATION = "cardume"
_CLOCK_SKEW = datetime.timedelta(hours=1)
_PEM_MARK = b"-----BEGIN"
# TLS 1.2 suites (TLS 1.3 suites are not affected by set_ciphers and are all fine).
_TLS12_CIPHERS = "ECDHE+AESGCM:ECDHE+CHACHA20"
_P = ParamSpec("_P")
_R = TypeVar("_R")


def _crypto(function: Callable[_P, _R]) -> Callable[_P, _R]:
    """Import the cryptography package when ``function`` first runs, not with this module:
    it costs a process about 10 MiB, and a node daemon serves TLS with the ssl module alone
    (it makes or reads certificates with cryptography only to join and to leave)."""
    @functools.wraps(function)
    def run(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        if "x509" not in globals():
            _import_cryptography()
        return function(*args, **kwargs)
    return run


def _import_cryptography() -> None:
    from cryptography import exceptions, x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, padding, rsa
    from cryptography.x509 import oid
    globals().update(
        UnsupportedAlgorithm=exceptions.UnsupportedAlgorithm, hashes=hashes,
        serialization=serialization, ec=ec, ed448=ed448, ed25519=ed25519, padding=padding,
        rsa=rsa, ExtendedKeyUsageOID=oid.ExtendedKeyUsageOID, NameOID=oid.NameOID,
        _PrivateKey=(ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
                     | ed25519.Ed25519PrivateKey | ed448.Ed448PrivateKey),
        _PublicKey=(ec.EllipticCurvePublicKey | rsa.RSAPublicKey | ed25519.Ed25519PublicKey
                    | ed448.Ed448PublicKey))
    globals()["x509"] = x509  # last: its presence tells _crypto that all of them are here


# --- keys and certificates -------------------------------------------------------------------


@_crypto
def new_private_key() -> bytes:
    """A new ECDSA P-256 private key, as unencrypted PKCS#8 PEM."""
    key = ec.generate_private_key(ec.SECP256R1())
    return _private_pem(key)


@_crypto
def create_ca(cluster_name: str, days: int = 3650) -> tuple[bytes, bytes]:
    """A new cluster CA: ``(certificate PEM, private key PEM)``."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = _name(cluster_name)
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    builder = (
        _base_builder(name, name, key.public_key(), days)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(digital_signature=True, content_commitment=False,
                          key_encipherment=False, data_encipherment=False,
                          key_agreement=False, key_cert_sign=True, crl_sign=True,
                          encipher_only=False, decipher_only=False),
            critical=True)
        .add_extension(ski, critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski),
                       critical=False)
    )
    cert = builder.sign(key, _hash_for(key))
    return cert.public_bytes(serialization.Encoding.PEM), _private_pem(key)


@_crypto
def self_signed(common_name: str, key_pem: bytes, days: int = 3650) -> bytes:
    """A self-signed certificate for ``key_pem``: a node daemon's identity before it joins."""
    key = _load_private_key(key_pem)
    name = _name(common_name)
    builder = _leaf_extensions(_base_builder(name, name, key.public_key(), days),
                               key.public_key(), _alt_names(common_name, []))
    cert = builder.sign(key, _hash_for(key))
    return cert.public_bytes(serialization.Encoding.PEM)


def self_signed_bundle(common_name: str, days: int = 3650) -> bytes:
    """A new key and a self-signed certificate for it, in one PEM (certificate first), as
    Ganeti's rapi.pem: the REST daemon's identity, named after the cluster so it stays
    right when the master role moves."""
    key = new_private_key()
    return self_signed(common_name, key, days) + key


def split_bundle(pem: bytes, source: str = "the PEM file") -> tuple[bytes, bytes]:
    """``(certificate, private key)`` of a PEM holding both; a WrongInput naming
    ``source`` when one is missing or the key is not the certificate's."""
    def block(kind: str) -> bytes | None:
        start = pem.find(b"-----BEGIN " + kind.encode())
        if start < 0:
            return None
        end_mark = b"-----END " + kind.encode()
        end = pem.find(end_mark, start)
        if end < 0:
            return None
        end = pem.find(b"-----", end + len(end_mark))
        return pem[start:end + 5] + b"\n" if end >= 0 else None

    cert = block("CERTIFICATE")
    key = None
    for kind in ("PRIVATE KEY", "EC PRIVATE KEY", "RSA PRIVATE KEY"):
        key = block(kind)
        if key is not None:
            break
    if cert is None or key is None:
        missing = "certificate" if cert is None else "private key"
        raise errors.WrongInput(f"{source} holds no {missing} (expected a PEM with the "
                                "certificate and its unencrypted key)")
    if not cert_matches_key(cert, key):
        raise errors.WrongInput(f"{source}: the private key does not belong to the "
                                "certificate")
    return cert, key


@_crypto
def sign_node_cert(ca_cert_pem: bytes, ca_key_pem: bytes, public_key_source: bytes,
                   node_name: str, ips: list[str], days: int = 3650) -> bytes:
    """Issue a node certificate, signed by the cluster CA, for the node's existing key.

    ``public_key_source`` is the node's current certificate (PEM or DER, e.g. the TLS peer
    certificate seen during the join) or its public key (PEM or DER), so private keys never
    travel. The certificate names ``node_name`` (DNS) and ``ips`` as subject alternative names
    and is valid for TLS server and client authentication.
    """
    ca_cert = _load_cert(ca_cert_pem)
    ca_key = _load_private_key(ca_key_pem)
    if not cert_matches_key(ca_cert_pem, ca_key_pem):
        raise errors.WrongInput("the CA private key does not belong to the CA certificate")
    public_key = _load_public_key(public_key_source)
    builder = _leaf_extensions(
        _base_builder(_name(node_name), ca_cert.subject, public_key, days),
        public_key, _alt_names(node_name, ips))
    try:
        ca_ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
        aki = x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski)
    except x509.ExtensionNotFound:
        aki = x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key())
    cert = builder.add_extension(aki, critical=False).sign(ca_key, _hash_for(ca_key))
    return cert.public_bytes(serialization.Encoding.PEM)


@_crypto
def cert_status(cert: bytes, ca_cert: bytes) -> dict[str, object]:
    """What cluster verify checks of a node certificate: CA signature, days left."""
    leaf = _load_cert(cert)
    signed = True
    try:
        _verify_issued_by(leaf, _load_cert(ca_cert))
    except Exception:  # a bad signature, key type or encoding all mean: not from our CA
        signed = False
    expires = getattr(leaf, "not_valid_after_utc", None)  # cryptography >= 42
    if expires is None:  # Debian 12's python3-cryptography (38): a naive UTC datetime
        expires = leaf.not_valid_after.replace(tzinfo=datetime.UTC)
    left = expires - datetime.datetime.now(datetime.UTC)
    return {"signed_by_cluster_ca": signed, "days_left": left.total_seconds() / 86400,
            "fingerprint": fingerprint(cert)}


def _verify_issued_by(leaf: x509.Certificate, ca: x509.Certificate) -> None:
    """Raise unless ``ca`` issued and signed ``leaf``. cryptography >= 40 has this as
    ``verify_directly_issued_by``; Debian 12's python3-cryptography (38) does not."""
    if hasattr(leaf, "verify_directly_issued_by"):
        leaf.verify_directly_issued_by(ca)
        return
    if leaf.issuer != ca.subject:
        raise ValueError("issuer name does not match the CA's subject")
    key = ca.public_key()
    data, signature = leaf.tbs_certificate_bytes, leaf.signature
    if isinstance(key, ec.EllipticCurvePublicKey):
        assert leaf.signature_hash_algorithm is not None
        key.verify(signature, data, ec.ECDSA(leaf.signature_hash_algorithm))
    elif isinstance(key, rsa.RSAPublicKey):
        assert leaf.signature_hash_algorithm is not None
        key.verify(signature, data, padding.PKCS1v15(), leaf.signature_hash_algorithm)
    elif isinstance(key, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey):
        key.verify(signature, data)
    else:
        raise ValueError(f"unsupported CA key type {type(key).__name__}")


def fingerprint(cert: bytes) -> str:
    """``"sha256:<hex>"`` of the certificate's DER encoding; ``cert`` may be PEM or DER."""
    der = cert if not cert.lstrip().startswith(_PEM_MARK) else _cert_der(cert)
    return FINGERPRINT_PREFIX + hashlib.sha256(der).hexdigest()


@_crypto
def public_key_pem(cert_pem: bytes) -> bytes:
    """The certificate's public key as SubjectPublicKeyInfo PEM."""
    return _load_cert(cert_pem).public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


@_crypto
def cert_common_name(cert_pem: bytes) -> str:
    """The subject common name (CN) of the certificate."""
    attrs = _load_cert(cert_pem).subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if not attrs:
        raise errors.WrongInput("the certificate has no common name")
    value = attrs[0].value
    return value if isinstance(value, str) else value.decode()


@_crypto
def cert_matches_key(cert_pem: bytes, key_pem: bytes) -> bool:
    """Whether ``key_pem`` is the private key of the certificate."""
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    der = serialization.Encoding.DER
    cert_pub = _load_cert(cert_pem).public_key().public_bytes(der, spki)
    key_pub = _load_private_key(key_pem).public_key().public_bytes(der, spki)
    return cert_pub == key_pub


# --- TLS contexts ----------------------------------------------------------------------------


def server_context(cert_file: str, key_file: str, ca_file: str | None) -> ssl.SSLContext:
    """A server context: mutual TLS against ``ca_file``, or no client certificates if None.

    ``ca_file=None`` is for a node daemon that has not joined a cluster: it must then serve
    only the join call (the RPC server enforces this with its ``public`` set).
    """
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_ciphers(_TLS12_CIPHERS)
    # Peers keep connections alive; tickets would only add bytes to every handshake.
    ctx.num_tickets = 0
    reload_server_context(ctx, cert_file, key_file, ca_file)
    return ctx


def reload_server_context(ctx: ssl.SSLContext, cert_file: str, key_file: str,
                          ca_file: str | None) -> None:
    """Update a server context in place; new connections use the new settings at once.

    Used by a node daemon right after it joins: the running server switches from its
    self-signed certificate and no client verification to its CA-signed certificate and
    mutual TLS, without a restart. Connections already open keep what they negotiated.
    CA certificates once loaded stay trusted by this context (OpenSSL cannot unload them).
    """
    _load_chain(ctx, cert_file, key_file)
    if ca_file is not None:
        _load_ca(ctx, ca_file)
        ctx.verify_mode = ssl.CERT_REQUIRED
    else:
        ctx.verify_mode = ssl.CERT_NONE


def client_context(cert_file: str | None, key_file: str | None,
                   ca_file: str | None) -> ssl.SSLContext:
    """A client context presenting ``cert_file`` and verifying servers against ``ca_file``.

    Hostname checking is off: nodes are addressed by IP and identified by the CA signature.
    ``cert_file=None`` presents no certificate. ``ca_file=None`` verifies nothing, like
    :func:`pinned_client_context`: the caller must then pin the server's fingerprint.
    """
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_ciphers(_TLS12_CIPHERS)
    ctx.check_hostname = False
    if ca_file is not None:
        _load_ca(ctx, ca_file)
        ctx.verify_mode = ssl.CERT_REQUIRED
    else:
        ctx.verify_mode = ssl.CERT_NONE
    if cert_file is not None:
        _load_chain(ctx, cert_file, key_file or cert_file)
    return ctx


def pinned_client_context(cert_file: str | None = None,
                          key_file: str | None = None) -> ssl.SSLContext:
    """A client context that does not verify the server (only for the join).

    The caller must compare :func:`peer_fingerprint` with the fingerprint it expects before
    sending anything that matters (``RpcClient.call(..., pin=...)`` does this).
    """
    return client_context(cert_file, key_file, None)


def peer_fingerprint(ssl_object: ssl.SSLObject | ssl.SSLSocket) -> str:
    """The fingerprint of the certificate the peer presented on this TLS connection."""
    der = ssl_object.getpeercert(binary_form=True)
    if not der:
        raise errors.WrongState("the TLS peer presented no certificate")
    return FINGERPRINT_PREFIX + hashlib.sha256(der).hexdigest()


# --- helpers ---------------------------------------------------------------------------------


def _private_pem(key: _PrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _name(common_name: str) -> x509.Name:
    if not common_name:
        raise errors.WrongInput("a certificate needs a non-empty common name")
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, _ORGANIZATION),
                      x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _base_builder(subject: x509.Name, issuer: x509.Name, public_key: _PublicKey,
                  days: int) -> x509.CertificateBuilder:
    if days <= 0:
        raise errors.WrongInput(f"certificate validity must be positive, not {days} days")
    now = datetime.datetime.now(datetime.UTC)
    return (x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(issuer)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - _CLOCK_SKEW)
            .not_valid_after(now + datetime.timedelta(days=days)))


def _leaf_extensions(builder: x509.CertificateBuilder, public_key: _PublicKey,
                     alt_names: list[x509.GeneralName]) -> x509.CertificateBuilder:
    return (builder
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(digital_signature=True, content_commitment=False,
                              key_encipherment=False, data_encipherment=False,
                              key_agreement=False, key_cert_sign=False, crl_sign=False,
                              encipher_only=False, decipher_only=False),
                critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH,
                                                  ExtendedKeyUsageOID.CLIENT_AUTH]),
                           critical=False)
            .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key),
                           critical=False))


def _alt_names(name: str, ips: list[str]) -> list[x509.GeneralName]:
    result: list[x509.GeneralName] = []
    seen: set[ipaddress.IPv4Address | ipaddress.IPv6Address] = set()
    try:
        own_ip = ipaddress.ip_address(name)
    except ValueError:
        result.append(x509.DNSName(name))
    else:
        seen.add(own_ip)
        result.append(x509.IPAddress(own_ip))
    for text in ips:
        try:
            ip = ipaddress.ip_address(text)
        except ValueError:
            raise errors.WrongInput(f"'{text}' is not an IP address") from None
        if ip not in seen:
            seen.add(ip)
            result.append(x509.IPAddress(ip))
    return result


def _hash_for(key: _PrivateKey) -> hashes.SHA256 | None:
    if isinstance(key, ed25519.Ed25519PrivateKey | ed448.Ed448PrivateKey):
        return None
    return hashes.SHA256()


def _load_cert(data: bytes) -> x509.Certificate:
    try:
        if data.lstrip().startswith(_PEM_MARK):
            return x509.load_pem_x509_certificate(data)
        return x509.load_der_x509_certificate(data)
    except ValueError as exc:
        raise errors.WrongInput(f"not a valid X.509 certificate: {exc}") from None


@_crypto
def _cert_der(data: bytes) -> bytes:
    return _load_cert(data).public_bytes(serialization.Encoding.DER)


def _load_private_key(data: bytes) -> _PrivateKey:
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise errors.WrongInput(f"not a valid unencrypted PEM private key: {exc}") from None
    if not isinstance(key, _PrivateKey):
        raise errors.WrongInput(f"a {type(key).__name__} cannot sign certificates")
    return key


def _load_public_key(data: bytes) -> _PublicKey:
    """A public key from a certificate or a SubjectPublicKeyInfo, PEM or DER."""
    stripped = data.lstrip()
    key: object
    if stripped.startswith(b"-----BEGIN CERTIFICATE"):
        key = _load_cert(data).public_key()
    else:
        try:
            if stripped.startswith(_PEM_MARK):
                key = serialization.load_pem_public_key(data)
            else:
                try:
                    key = x509.load_der_x509_certificate(data).public_key()
                except ValueError:
                    key = serialization.load_der_public_key(data)
        except (ValueError, UnsupportedAlgorithm) as exc:
            raise errors.WrongInput(f"not a certificate or public key: {exc}") from None
    if not isinstance(key, _PublicKey):
        raise errors.WrongInput(f"a {type(key).__name__} cannot be certified for TLS")
    return key


def _load_chain(ctx: ssl.SSLContext, cert_file: str, key_file: str) -> None:
    try:
        ctx.load_cert_chain(cert_file, key_file)
    except FileNotFoundError as exc:
        raise errors.EnvironmentProblem(f"TLS certificate or key missing: {exc.filename}") from None
    except ssl.SSLError as exc:
        raise errors.EnvironmentProblem(
            f"cannot load TLS certificate {cert_file} with key {key_file}: {exc.reason or exc}"
        ) from None


def _load_ca(ctx: ssl.SSLContext, ca_file: str) -> None:
    try:
        ctx.load_verify_locations(cafile=ca_file)
    except FileNotFoundError:
        raise errors.EnvironmentProblem(f"cluster CA certificate missing: {ca_file}") from None
    except ssl.SSLError as exc:
        raise errors.EnvironmentProblem(
            f"cannot load cluster CA certificate {ca_file}: {exc.reason or exc}") from None
