"""Keys, certificates and TLS contexts (no network: handshakes run over memory BIOs)."""

from __future__ import annotations

import ipaddress
import re
import ssl
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID

from cardume import errors, tls


def _write(path: Path, data: bytes) -> str:
    path.write_bytes(data)
    return str(path)


def _handshake(client: ssl.SSLContext, server: ssl.SSLContext) -> tuple[ssl.SSLObject,
                                                                          ssl.SSLObject]:
    """Run a TLS handshake in memory; raise the first side's ssl.SSLError."""
    c_in, c_out, s_in, s_out = (ssl.MemoryBIO() for _ in range(4))
    c = client.wrap_bio(c_in, c_out, server_side=False)
    s = server.wrap_bio(s_in, s_out, server_side=True)
    done = {"c": False, "s": False}
    for _ in range(20):
        for name, obj in (("c", c), ("s", s)):
            if not done[name]:
                try:
                    obj.do_handshake()
                    done[name] = True
                except ssl.SSLWantReadError:
                    pass
        s_in.write(c_out.read())
        c_in.write(s_out.read())
        if all(done.values()):
            # TLS 1.3: the server checks the client certificate after the client finished;
            # exchange a byte so a rejection surfaces on the client too.
            c.write(b"x")
            s_in.write(c_out.read())
            assert s.read(1) == b"x"
            return c, s
    raise AssertionError("handshake did not finish")


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes | str]:
    d = tmp_path_factory.mktemp("pki")
    ca_cert, ca_key = tls.create_ca("cluster.example")
    node_key = tls.new_private_key()
    node_self = tls.self_signed("node1.example", node_key)
    node_cert = tls.sign_node_cert(ca_cert, ca_key, node_self, "node1.example",
                                   ["127.0.0.1", "::1"])
    other_key = tls.new_private_key()
    other_self = tls.self_signed("intruder", other_key)
    return {
        "ca_cert": ca_cert, "ca_key": ca_key, "node_key": node_key, "node_self": node_self,
        "node_cert": node_cert, "other_key": other_key, "other_self": other_self,
        "ca_file": _write(d / "ca.pem", ca_cert),
        "node_key_file": _write(d / "node.key", node_key),
        "node_self_file": _write(d / "node-self.pem", node_self),
        "node_cert_file": _write(d / "node.pem", node_cert),
        "other_key_file": _write(d / "other.key", other_key),
        "other_self_file": _write(d / "other.pem", other_self),
    }


def _b(value: bytes | str) -> bytes:
    assert isinstance(value, bytes)
    return value


def _s(value: bytes | str) -> str:
    assert isinstance(value, str)
    return value


def test_new_private_key_is_p256_pkcs8() -> None:
    pem = tls.new_private_key()
    assert pem.startswith(b"-----BEGIN PRIVATE KEY-----")
    key = serialization.load_pem_private_key(pem, password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    assert key.curve.name == "secp256r1"
    assert tls.new_private_key() != pem


def test_create_ca(pki: dict[str, bytes | str]) -> None:
    cert = x509.load_pem_x509_certificate(_b(pki["ca_cert"]))
    constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints)
    assert constraints.critical and constraints.value.ca
    assert tls.cert_common_name(_b(pki["ca_cert"])) == "cluster.example"
    cert.verify_directly_issued_by(cert)
    assert tls.cert_matches_key(_b(pki["ca_cert"]), _b(pki["ca_key"]))


def test_self_signed(pki: dict[str, bytes | str]) -> None:
    cert = x509.load_pem_x509_certificate(_b(pki["node_self"]))
    cert.verify_directly_issued_by(cert)
    assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert tls.cert_common_name(_b(pki["node_self"])) == "node1.example"
    assert tls.cert_matches_key(_b(pki["node_self"]), _b(pki["node_key"]))
    assert not tls.cert_matches_key(_b(pki["node_self"]), _b(pki["other_key"]))


def test_sign_node_cert_keeps_the_node_key(pki: dict[str, bytes | str]) -> None:
    ca = x509.load_pem_x509_certificate(_b(pki["ca_cert"]))
    cert = x509.load_pem_x509_certificate(_b(pki["node_cert"]))
    cert.verify_directly_issued_by(ca)
    assert tls.cert_matches_key(_b(pki["node_cert"]), _b(pki["node_key"]))
    assert tls.public_key_pem(_b(pki["node_cert"])) == tls.public_key_pem(_b(pki["node_self"]))
    assert tls.cert_common_name(_b(pki["node_cert"])) == "node1.example"
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["node1.example"]
    assert san.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.1"),
                                                        ipaddress.ip_address("::1")]
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert set(eku) == {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH}
    assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca


def test_sign_node_cert_from_public_key_and_der(pki: dict[str, bytes | str]) -> None:
    pub = tls.public_key_pem(_b(pki["node_self"]))
    der = x509.load_pem_x509_certificate(_b(pki["node_self"])).public_bytes(
        serialization.Encoding.DER)
    for source in (pub, der):
        cert = tls.sign_node_cert(_b(pki["ca_cert"]), _b(pki["ca_key"]), source, "n2",
                                  ["10.0.0.2"])
        assert tls.cert_matches_key(cert, _b(pki["node_key"]))


def test_sign_node_cert_rejects_bad_input(pki: dict[str, bytes | str]) -> None:
    ca_cert, ca_key = _b(pki["ca_cert"]), _b(pki["ca_key"])
    with pytest.raises(errors.WrongInput, match="not an IP address"):
        tls.sign_node_cert(ca_cert, ca_key, _b(pki["node_self"]), "n", ["300.1.1.1"])
    with pytest.raises(errors.WrongInput, match="does not belong"):
        tls.sign_node_cert(ca_cert, _b(pki["node_key"]), _b(pki["node_self"]), "n", [])
    with pytest.raises(errors.WrongInput):
        tls.sign_node_cert(ca_cert, ca_key, b"garbage", "n", [])


def test_fingerprint_is_stable_across_pem_and_der(pki: dict[str, bytes | str]) -> None:
    pem = _b(pki["node_cert"])
    der = x509.load_pem_x509_certificate(pem).public_bytes(serialization.Encoding.DER)
    fp = tls.fingerprint(pem)
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", fp)
    assert tls.fingerprint(der) == fp
    assert tls.fingerprint(b"\n" + pem) == fp
    assert tls.fingerprint(_b(pki["node_self"])) != fp
    with pytest.raises(errors.WrongInput):
        tls.cert_common_name(b"not a certificate")


def test_contexts(pki: dict[str, bytes | str]) -> None:
    server = tls.server_context(_s(pki["node_cert_file"]), _s(pki["node_key_file"]),
                                _s(pki["ca_file"]))
    assert server.verify_mode == ssl.CERT_REQUIRED
    assert server.minimum_version == ssl.TLSVersion.TLSv1_2
    join = tls.server_context(_s(pki["node_self_file"]), _s(pki["node_key_file"]), None)
    assert join.verify_mode == ssl.CERT_NONE
    client = tls.client_context(_s(pki["node_cert_file"]), _s(pki["node_key_file"]),
                                _s(pki["ca_file"]))
    assert client.verify_mode == ssl.CERT_REQUIRED and not client.check_hostname
    pinned = tls.pinned_client_context()
    assert pinned.verify_mode == ssl.CERT_NONE and not pinned.check_hostname
    with pytest.raises(errors.EnvironmentProblem, match="missing"):
        tls.server_context("/nonexistent/cert.pem", "/nonexistent/key.pem", None)


def test_mutual_tls_handshake(pki: dict[str, bytes | str]) -> None:
    server = tls.server_context(_s(pki["node_cert_file"]), _s(pki["node_key_file"]),
                                _s(pki["ca_file"]))
    client = tls.client_context(_s(pki["node_cert_file"]), _s(pki["node_key_file"]),
                                _s(pki["ca_file"]))
    c, s = _handshake(client, server)
    assert tls.peer_fingerprint(c) == tls.fingerprint(_b(pki["node_cert"]))
    assert tls.peer_fingerprint(s) == tls.fingerprint(_b(pki["node_cert"]))


def test_mutual_tls_refuses_foreign_client_cert(pki: dict[str, bytes | str]) -> None:
    server = tls.server_context(_s(pki["node_cert_file"]), _s(pki["node_key_file"]),
                                _s(pki["ca_file"]))
    intruder = tls.client_context(_s(pki["other_self_file"]), _s(pki["other_key_file"]),
                                  _s(pki["ca_file"]))
    with pytest.raises(ssl.SSLError):
        _handshake(intruder, server)
    anonymous = tls.client_context(None, None, _s(pki["ca_file"]))
    with pytest.raises(ssl.SSLError):
        _handshake(anonymous, server)


def test_client_refuses_server_not_from_ca(pki: dict[str, bytes | str]) -> None:
    server = tls.server_context(_s(pki["node_self_file"]), _s(pki["node_key_file"]), None)
    client = tls.client_context(_s(pki["node_cert_file"]), _s(pki["node_key_file"]),
                                _s(pki["ca_file"]))
    with pytest.raises(ssl.SSLCertVerificationError):
        _handshake(client, server)


def test_pinned_join_and_reload(pki: dict[str, bytes | str]) -> None:
    server = tls.server_context(_s(pki["node_self_file"]), _s(pki["node_key_file"]), None)
    c, s = _handshake(tls.pinned_client_context(), server)
    assert tls.peer_fingerprint(c) == tls.fingerprint(_b(pki["node_self"]))
    assert s.getpeercert(binary_form=True) is None
    with pytest.raises(errors.WrongState):
        tls.peer_fingerprint(s)
    # After the join: same key, CA-signed certificate, mutual TLS, same context object.
    tls.reload_server_context(server, _s(pki["node_cert_file"]), _s(pki["node_key_file"]),
                              _s(pki["ca_file"]))
    assert server.verify_mode == ssl.CERT_REQUIRED
    client = tls.client_context(_s(pki["node_cert_file"]), _s(pki["node_key_file"]),
                                _s(pki["ca_file"]))
    c, s = _handshake(client, server)
    assert tls.peer_fingerprint(c) == tls.fingerprint(_b(pki["node_cert"]))
    assert tls.peer_fingerprint(s) == tls.fingerprint(_b(pki["node_cert"]))
    with pytest.raises(ssl.SSLError):
        _handshake(tls.pinned_client_context(), server)
