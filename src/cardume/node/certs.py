"""The node daemon's certificate work without the cryptography package in its process.

cryptography costs a process about 10 MiB. A node daemon needs it only to make its key and
self-signed certificate (first start: done in a forked child, see :func:`in_child`) and to
leave a cluster. What it reads of certificates while it serves (the common name of a caller,
its own certificate's expiry, whether the cluster CA signed it, whether an issued certificate
is for its key) comes from the certificates' DER and from OpenSSL through the ssl module.
Anything unusual (a certificate this reader does not parse) falls back to cardume.tls, so the
answers are the same.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import ssl
import sys
import time
import traceback
from collections.abc import Callable
from typing import Any

from cardume import errors

_COMMON_NAME = bytes([0x06, 0x03, 0x55, 0x04, 0x03])  # OID 2.5.4.3, DER-encoded
_STRINGS = {0x0C: "utf-8", 0x13: "ascii", 0x16: "ascii", 0x14: "latin-1", 0x1E: "utf-16-be",
            0x1C: "utf-32-be"}  # UTF8, Printable, IA5, T61, BMP, Universal
_NO_CHECK_TIME = 0x200000  # OpenSSL's X509_V_FLAG_NO_CHECK_TIME
_statuses: dict[tuple[bytes, bytes], tuple[bool, float]] = {}


class _Unparsed(Exception):
    """The DER is not what this small reader expects."""


def _element(data: bytes, pos: int) -> tuple[int, int, int]:
    """(tag, start of contents, end of contents) of the DER element at ``pos``."""
    if pos + 2 > len(data):
        raise _Unparsed("truncated")
    tag, length = data[pos], data[pos + 1]
    pos += 2
    if length & 0x80:
        count = length & 0x7F
        if not 0 < count <= 4 or pos + count > len(data):
            raise _Unparsed("bad length")
        length = int.from_bytes(data[pos:pos + count], "big")
        pos += count
    if pos + length > len(data):
        raise _Unparsed("truncated")
    return tag, pos, pos + length


def _children(data: bytes, start: int, end: int) -> list[tuple[int, int, int]]:
    found = []
    while start < end:
        element = _element(data, start)
        found.append(element)
        start = element[2]
    return found


def _tbs_fields(der: bytes) -> list[tuple[int, int, int]]:
    """The fields of the certificate's TBSCertificate, without the optional version."""
    tag, start, end = _element(der, 0)
    if tag != 0x30:
        raise _Unparsed("not a sequence")
    tag, start, end = _element(der, start)
    if tag != 0x30:
        raise _Unparsed("no TBSCertificate")
    fields = _children(der, start, end)
    if fields and fields[0][0] == 0xA0:
        fields = fields[1:]
    if len(fields) < 5:
        raise _Unparsed("short TBSCertificate")
    return fields  # serial, signature algorithm, issuer, validity, subject, ...


def _common_name(der: bytes) -> str | None:
    _, start, end = _tbs_fields(der)[4]
    for _, rdn_start, rdn_end in _children(der, start, end):
        for _, attr_start, _ in _children(der, rdn_start, rdn_end):
            oid = _element(der, attr_start)
            if der[attr_start:oid[2]] != _COMMON_NAME:
                continue
            tag, value_start, value_end = _element(der, oid[2])
            if tag not in _STRINGS:
                raise _Unparsed(f"string type {tag:#x}")
            return der[value_start:value_end].decode(_STRINGS[tag])
    return None


def _not_after(der: bytes) -> float:
    """The end of the certificate's validity, as a POSIX timestamp."""
    _, start, end = _tbs_fields(der)[3]
    times = _children(der, start, end)
    if len(times) != 2:
        raise _Unparsed("validity")
    tag, value_start, value_end = times[1]
    text = der[value_start:value_end].decode("ascii")
    if tag == 0x17 and len(text) == 13 and text.endswith("Z"):  # UTCTime YYMMDDHHMMSSZ
        year = int(text[:2])
        text = f"{1900 + year if year >= 50 else 2000 + year}{text[2:]}"
    elif not (tag == 0x18 and len(text) == 15 and text.endswith("Z")):  # GeneralizedTime
        raise _Unparsed("time format")
    import calendar  # here: a node daemon reads a date only for verify
    return float(calendar.timegm(time.strptime(text, "%Y%m%d%H%M%SZ")))


def common_name(cert_der: bytes) -> str:
    """The subject common name of a DER certificate (as tls.cert_common_name)."""
    try:
        name = _common_name(cert_der)
    except (_Unparsed, UnicodeDecodeError, ValueError):
        name = None
    if name is None:  # none, or not parsed here: cardume.tls says which, in its words
        from cardume import tls
        return tls.cert_common_name(cert_der)
    return name


def fingerprint(cert_pem: bytes) -> str:
    """tls.fingerprint of one PEM certificate."""
    try:
        der = ssl.PEM_cert_to_DER_cert(cert_pem.decode("ascii"))
    except (ValueError, UnicodeDecodeError):
        from cardume import tls
        return tls.fingerprint(cert_pem)
    return "sha256:" + hashlib.sha256(der).hexdigest()


def matches_key(cert_pem: bytes, key_file: str, scratch_dir: str) -> bool:
    """Whether the key in ``key_file`` is the certificate's (as tls.cert_matches_key):
    OpenSSL refuses to load a certificate with another key."""
    import tempfile  # here: a node daemon checks a key once, when it joins
    fd, path = tempfile.mkstemp(dir=scratch_dir, prefix=".check-", suffix=".pem")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(cert_pem)
        with contextlib.suppress(ssl.SSLError):
            ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_cert_chain(path, key_file)
            return True
    finally:
        os.unlink(path)
    with open(key_file, "rb") as handle:  # not a match, or not loadable: cardume.tls tells
        key = handle.read()
    from cardume import tls
    return tls.cert_matches_key(cert_pem, key)


def _signed_by(cert_file: str, key_file: str, ca_pem: bytes) -> bool:
    """Whether the CA in ``ca_pem`` signed the certificate: an in-memory TLS handshake
    whose client trusts only that CA and, like tls.cert_status, ignores validity dates."""
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(cert_file, key_file)
    client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client.check_hostname = False
    client.verify_flags |= _NO_CHECK_TIME
    try:
        client.load_verify_locations(cadata=ca_pem.decode("ascii"))
    except (ssl.SSLError, ValueError, UnicodeDecodeError):
        return False
    to_server, to_client = ssl.MemoryBIO(), ssl.MemoryBIO()
    ends = [client.wrap_bio(to_client, to_server),
            server.wrap_bio(to_server, to_client, server_side=True)]
    done = [False, False]
    for _ in range(8):
        for i, end in enumerate(ends):
            if done[i]:
                continue
            try:
                end.do_handshake()
                done[i] = True
            except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
                pass
            except ssl.SSLError:
                return False
        if all(done):
            return True
    return False


def status(cert_pem: bytes, ca_pem: bytes, cert_file: str, key_file: str) -> dict[str, object]:
    """tls.cert_status of this node's own certificate (``cert_pem``, read from
    ``cert_file``, whose key is ``key_file``) against the cluster CA ``ca_pem``. What does
    not change with time is kept per certificate and CA."""
    known = _statuses.get((cert_pem, ca_pem))
    if known is None:
        try:
            der = ssl.PEM_cert_to_DER_cert(cert_pem.decode("ascii"))
            known = (_signed_by(cert_file, key_file, ca_pem), _not_after(der))
        except (_Unparsed, ValueError, UnicodeDecodeError, ssl.SSLError, OSError):
            from cardume import tls
            return tls.cert_status(cert_pem, ca_pem)
        if len(_statuses) > 16:
            _statuses.clear()
        _statuses[(cert_pem, ca_pem)] = known
    signed, not_after = known
    return {"signed_by_cluster_ca": signed, "days_left": (not_after - time.time()) / 86400,
            "fingerprint": fingerprint(cert_pem)}


def in_child(function: Callable[..., Any], *args: Any) -> None:
    """Run ``function(*args)`` in a forked child and wait for it, so that what it imports
    (cryptography) stays out of this process. Only before the daemon's loop and threads
    start. An error is printed by the child and raised here as an EnvironmentProblem."""
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:  # the child: never returns into the caller's code
        code = 1
        try:
            function(*args)
            code = 0
        except BaseException:  # noqa: BLE001 - printed for the parent's log, then exit
            traceback.print_exc()
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    _, status_ = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status_)
    if code != 0:
        raise errors.EnvironmentProblem(
            f"making the node's key and certificate failed (exit {code}); see the log above")
