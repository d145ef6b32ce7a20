"""The REST daemon of a real local cluster, driven by real curl and by Python's http.client:
who may call it (401/403), the errors it answers (400/404/405/413/415), a slow client
beside a fast one, certificate renewal, and the daemon following a master failover.

Every test finds the REST API on the current master, so they pass alone and in any order
(the failover test moves the master)."""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import os
import signal
import socket
import ssl
import subprocess
from pathlib import Path
from typing import Any

import pytest
from integration_kit import VCluster, pid_alive, wait_for

from cardume import paths
from cardume.paths import NodePaths

CURL = "/usr/bin/curl"
pytestmark = pytest.mark.skipif(not os.path.exists(CURL), reason="curl is not installed")


def master_paths(cluster: VCluster) -> NodePaths:
    return NodePaths(str(cluster.node_dir(cluster.master())))


def address(cluster: VCluster) -> tuple[str, int]:
    where: Any = wait_for(lambda: paths.read_json(master_paths(cluster).rapi_address), 30,
                          "the REST daemon's address")
    return str(where["address"]), int(where["port"])


def credentials(cluster: VCluster) -> str:
    return (cluster.root / "rapi-credentials").read_text().strip()


def curl(cluster: VCluster, path: str, *args: str, user: str | None = "",
         where: tuple[str, int] | None = None) -> tuple[int, Any]:
    """``curl ARGS https://MASTER:5080PATH``: the status and the parsed JSON reply.
    ``user``: "" for the cluster's gnt-admin, None for no credentials, else USER:PASSWORD."""
    host, port = where or address(cluster)
    login = credentials(cluster) if user == "" else user
    argv = [CURL, "-sk", "--max-time", "30", "-o", "-", "-w", "\n%{http_code}",
            *(["-u", login] if login is not None else []), *args,
            f"https://{host}:{port}{path}"]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=60).stdout
    body, _, status = out.rpartition("\n")
    return int(status), json.loads(body) if body.strip() else None


def served_fingerprint(where: tuple[str, int]) -> str:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with socket.create_connection(where, 10) as raw, ctx.wrap_socket(raw) as conn:
        der = conn.getpeercert(binary_form=True)
    assert der is not None
    return hashlib.sha256(der).hexdigest()


def file_fingerprint(pem_file: str) -> str:
    pem = Path(pem_file).read_text()
    begin = pem.index("-----BEGIN CERTIFICATE-----")
    end = pem.index("-----END CERTIFICATE-----")
    return hashlib.sha256(ssl.PEM_cert_to_DER_cert(pem[begin:end + 25])).hexdigest()


@pytest.fixture(scope="module")
def reader(cluster: VCluster) -> str:
    """A read-only user added to the master's users file, as an admin would."""
    master = master_paths(cluster)
    with open(master.rapi_users, "a", encoding="utf-8") as handle:
        handle.write("reader {cleartext}readpw read\n")
    pid = cluster.pid(cluster.master(), "masterd")
    assert pid is not None
    os.kill(pid, signal.SIGHUP)  # into the configuration now, not in two seconds
    wait_for(lambda: curl(cluster, "/2/info", user="reader:readpw")[0] == 200, 30,
             "the REST daemon to read the new user")
    return "reader:readpw"


def test_the_rest_api_answers_on_the_master(cluster: VCluster) -> None:
    assert curl(cluster, "/version") == (200, 2)
    status, info = curl(cluster, "/2/info")
    assert status == 200 and info["master"] == cluster.master()
    users = Path(master_paths(cluster).rapi_users)
    assert users.stat().st_mode & 0o777 == 0o600
    assert Path(master_paths(cluster).rapi_cert).stat().st_mode & 0o777 == 0o600


def test_who_may_call(cluster: VCluster, reader: str) -> None:
    status, body = curl(cluster, "/2/info", user=None)
    assert status == 401 and body["code"] == 401
    assert curl(cluster, "/2/info", user="gnt-admin:wrong")[0] == 401
    assert curl(cluster, "/2/info", user="nobody:x")[0] == 401
    status, body = curl(cluster, "/2/redistribute-config", "-X", "PUT", user=reader)
    assert status == 403 and "write" in body["message"]
    assert curl(cluster, "/2/info", user=reader)[0] == 200


def test_challenge_header_names_ganetis_realm(cluster: VCluster) -> None:
    host, port = address(cluster)
    out = subprocess.run([CURL, "-sk", "-D", "-", "-o", "/dev/null",
                          f"https://{host}:{port}/2/info"],
                         capture_output=True, text=True, timeout=60).stdout
    assert 'WWW-Authenticate: Basic realm="Ganeti Remote API"' in out


def test_error_replies(cluster: VCluster, tmp_path: Path) -> None:
    status, body = curl(cluster, "/2/no-such-resource")
    assert status == 404 and set(body) == {"code", "message", "explain"}
    assert curl(cluster, "/2/instances/no-such-vm")[0] == 404
    status, body = curl(cluster, "/version", "-X", "DELETE")
    assert status == 405 and "DELETE" in body["message"]
    status, body = curl(cluster, "/2/redistribute-config", "-X", "PUT",
                        "-H", "Content-Type: application/json", "--data-binary", "{nope")
    assert status == 400 and "JSON" in body["message"]
    status, body = curl(cluster, "/2/redistribute-config", "-X", "PUT", "-d", "a=1")
    assert status == 415 and "application/json" in body["message"]
    big = tmp_path / "big.json"
    big.write_text(json.dumps({"pad": "x" * (2 * 1024 * 1024)}))
    status, body = curl(cluster, "/2/redistribute-config", "-X", "PUT",
                        "-H", "Content-Type: application/json", "--data-binary", f"@{big}")
    assert status == 413 and "larger" in body["message"]
    assert curl(cluster, "/version") == (200, 2)  # and it keeps serving


def test_keep_alive_with_http_client(cluster: VCluster) -> None:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    host, port = address(cluster)
    conn = http.client.HTTPSConnection(host, port, context=ctx, timeout=30)
    login = base64.b64encode(credentials(cluster).encode()).decode()
    try:
        for path in ("/version", "/2/info", "/version"):
            conn.request("GET", path, headers={"Authorization": f"Basic {login}"})
            reply = conn.getresponse()
            assert reply.status == 200 and reply.getheader("Content-Type") == \
                "application/json"
            json.loads(reply.read())
        conn.request("GET", "/2/info", body=b"[1,", headers={
            "Authorization": f"Basic {login}", "Content-Type": "application/json"})
        reply = conn.getresponse()
        assert reply.status == 400 and "JSON" in json.loads(reply.read())["message"]
    finally:
        conn.close()


def test_a_slow_client_does_not_hold_up_another(cluster: VCluster) -> None:
    where = address(cluster)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with socket.create_connection(where, 30) as raw, ctx.wrap_socket(raw) as slow:
        slow.sendall(b"GET /2/info HTTP/1.1\r\nHost: slow\r\nAuthor")  # half a request
        assert curl(cluster, "/version", where=where) == (200, 2)
        slow.sendall(b"ization: Basic " + base64.b64encode(credentials(cluster).encode())
                     + b"\r\n\r\n")
        assert slow.recv(64).startswith(b"HTTP/1.1 200 OK")


def test_certificate_renewal_changes_the_served_certificate(cluster: VCluster) -> None:
    where = address(cluster)
    before = served_fingerprint(where)
    cluster.gnt("gnt-cluster", "renew-crypto", "--new-rapi-certificate", "-f")
    after = served_fingerprint(where)
    assert after != before
    assert after == file_fingerprint(master_paths(cluster).rapi_cert)
    rc, _, err = cluster.gnt("gnt-cluster", "renew-crypto", "--new-rapi-certificate",
                             check=False)
    assert rc != 0 and "-f" in err  # no terminal to confirm on
    assert served_fingerprint(where) == after


def test_installing_a_given_certificate(cluster: VCluster, tmp_path: Path) -> None:
    from cardume import tls
    bundle = tls.self_signed_bundle("rapi.example.org")
    given = tmp_path / "rapi.pem"
    given.write_bytes(bundle)
    cluster.gnt("gnt-cluster", "renew-crypto", "--rapi-certificate", str(given), "-f")
    assert served_fingerprint(address(cluster)) == file_fingerprint(str(given))
    certificate_only = tmp_path / "cert-only.pem"
    certificate_only.write_bytes(bundle[:bundle.index(b"-----BEGIN PRIVATE KEY")])
    rc, _, err = cluster.gnt("gnt-cluster", "renew-crypto", "--rapi-certificate",
                             str(certificate_only), "-f", check=False)
    assert rc != 0 and "private key" in err and str(certificate_only) in err


def test_the_rest_api_follows_a_master_failover(cluster: VCluster) -> None:
    old = cluster.master()
    old_where = address(cluster)
    certificate = served_fingerprint(old_where)
    old_pid = cluster.pid(old, "rapi")
    new = next(name for name, role in cluster.roles().items() if role == "C")
    cluster.gnt("gnt-cluster", "master-failover", node=new)
    assert cluster.master() == new
    new_where = address(cluster)
    assert new_where != old_where
    assert curl(cluster, "/version", where=new_where) == (200, 2)
    assert curl(cluster, "/2/info", where=new_where)[1]["master"] == new
    assert served_fingerprint(new_where) == certificate  # the certificate came along
    assert old_pid is not None and not pid_alive(old_pid)
    with pytest.raises(OSError):
        socket.create_connection(old_where, 5).close()


def test_anonymous_reads_are_an_option_of_the_daemon(cluster: VCluster) -> None:
    master = master_paths(cluster)
    options = Path(master.rapi_options)

    def hup() -> None:
        pid = cluster.pid(cluster.master(), "masterd")
        assert pid is not None
        os.kill(pid, signal.SIGHUP)

    assert curl(cluster, "/2/info", user=None)[0] == 401
    options.write_text("# htools in remote mode send no credentials\n"
                       "--allow-anonymous-reads\n")
    try:
        hup()  # the master daemon restarts its REST daemon with the option
        wait_for(lambda: curl(cluster, "/2/info", user=None)[0] == 200, 30,
                 "anonymous reads to be allowed")
        status, _ = curl(cluster, "/2/redistribute-config", "-X", "PUT", user=None)
        assert status == 401  # never anonymous writes
        assert curl(cluster, "/2/info", user="gnt-admin:wrong")[0] == 401
    finally:
        options.unlink()
        hup()
    wait_for(lambda: curl(cluster, "/2/info", user=None)[0] == 401, 30,
             "anonymous reads to be refused again")


def test_a_killed_master_daemon_takes_its_rest_daemon_along(cluster: VCluster) -> None:
    master = cluster.master()
    masterd = cluster.pid(master, "masterd")
    rapi = cluster.pid(master, "rapi")
    assert masterd is not None and rapi is not None
    os.kill(masterd, signal.SIGKILL)
    wait_for(lambda: not pid_alive(rapi), 30, "the orphaned REST daemon to stop")
    cluster.up()  # restarts the master daemon, which starts a REST daemon again
    assert curl(cluster, "/version") == (200, 2)
    assert cluster.pid(master, "rapi") not in (None, rapi)
