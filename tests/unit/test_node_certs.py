"""The node daemon's certificate reading without cryptography (node/certs.py) gives the
answers of cardume.tls, and a node daemon's process never loads cryptography."""

from __future__ import annotations

import datetime
import os
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from cardume import errors, tls
from cardume.node import certs


@pytest.fixture(scope="module")
def pki() -> dict[str, bytes]:
    ca, ca_key = tls.create_ca("cluster.example")
    other_ca, other_key = tls.create_ca("other.example")
    key = tls.new_private_key()
    own = tls.self_signed("node1.example", key)
    return {"ca": ca, "ca_key": ca_key, "key": key, "self": own,
            "signed": tls.sign_node_cert(ca, ca_key, own, "node1.example", ["127.0.0.5"]),
            "other": tls.sign_node_cert(other_ca, other_key, own, "node1.example", [])}


def _expired(pki: dict[str, bytes]) -> bytes:
    """A node certificate the cluster CA signed, valid until two days ago."""
    ca = x509.load_pem_x509_certificate(pki["ca"])
    ca_key = serialization.load_pem_private_key(pki["ca_key"], None)
    key = serialization.load_pem_private_key(pki["key"], None)
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(x509.Name([
        x509.NameAttribute(x509.oid.NameOID.COMMON_NAME, "node1.example")]))
        .issuer_name(ca.subject).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=30))
        .not_valid_after(now - datetime.timedelta(days=2))
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH,
                                              x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH]),
                       critical=False)
        .sign(ca_key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.PEM)


@pytest.mark.parametrize("which", ["self", "signed", "other", "expired"])
def test_status_and_names_as_tls_says(pki: dict[str, bytes], tmp_path: Path,
                                      which: str) -> None:
    cert = _expired(pki) if which == "expired" else pki[which]
    cert_file, key_file = tmp_path / "node.pem", tmp_path / "node.key"
    cert_file.write_bytes(cert)
    key_file.write_bytes(pki["key"])
    expected = tls.cert_status(cert, pki["ca"])
    got = certs.status(cert, pki["ca"], str(cert_file), str(key_file))
    assert got["signed_by_cluster_ca"] == expected["signed_by_cluster_ca"]
    assert got["fingerprint"] == expected["fingerprint"] == tls.fingerprint(cert)
    assert got["days_left"] == pytest.approx(expected["days_left"], abs=0.01)
    der = tls._cert_der(cert)
    assert certs.common_name(der) == tls.cert_common_name(der) == "node1.example"
    assert certs.fingerprint(cert) == tls.fingerprint(cert)
    assert certs.matches_key(cert, str(key_file), str(tmp_path))


def test_signed_answers(pki: dict[str, bytes], tmp_path: Path) -> None:
    key_file = tmp_path / "node.key"
    key_file.write_bytes(pki["key"])
    answers = {}
    for which in ("self", "signed", "other"):
        (tmp_path / which).write_bytes(pki[which])
        answers[which] = certs.status(pki[which], pki["ca"], str(tmp_path / which),
                                      str(key_file))["signed_by_cluster_ca"]
    assert answers == {"self": False, "signed": True, "other": False}
    # a CA that is not a certificate signs nothing
    assert not certs.status(pki["signed"], b"junk", str(tmp_path / "signed"),
                            str(key_file))["signed_by_cluster_ca"]


def test_another_key_does_not_match(pki: dict[str, bytes], tmp_path: Path) -> None:
    other = tmp_path / "other.key"
    other.write_bytes(tls.new_private_key())
    assert not certs.matches_key(pki["signed"], str(other), str(tmp_path))
    assert sorted(os.listdir(tmp_path)) == ["other.key"]  # no scratch file left behind


def test_a_name_this_reader_does_not_parse_is_read_by_tls(pki: dict[str, bytes]) -> None:
    with pytest.raises(errors.WrongInput):
        certs.common_name(b"\x30\x03\x02\x01\x00")  # not a certificate: tls's error


def test_in_child_runs_apart(tmp_path: Path) -> None:
    out = tmp_path / "pid"
    certs.in_child(lambda: out.write_text(str(os.getpid())))
    assert int(out.read_text()) != os.getpid()
    with pytest.raises(errors.EnvironmentProblem, match="exit 1"):
        certs.in_child(lambda: 1 / 0)


def test_a_node_daemon_does_not_load_cryptography(tmp_path: Path) -> None:
    """The daemon's imports, its first start's key and certificate, a join's checks."""
    code = (
        "import sys\n"
        "from cardume.node import daemon\n"
        "from cardume.paths import NodePaths\n"
        f"paths = NodePaths({str(tmp_path / 'node')!r}); paths.make_private()\n"
        "from cardume.node import certs\n"
        "certs.in_child(daemon.ensure_identity, paths, 'node1')\n"
        "daemon.ensure_identity(paths, 'node1')\n"
        "pem = open(paths.node_cert, 'rb').read()\n"
        "assert certs.matches_key(pem, paths.node_key, paths.certs)\n"
        "certs.common_name(__import__('ssl').PEM_cert_to_DER_cert(pem.decode()))\n"
        "print(sorted(m for m in sys.modules if m.startswith('cryptography')))\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, check=True)
    assert proc.stdout.strip() == "[]"
    assert (tmp_path / "node").exists()
