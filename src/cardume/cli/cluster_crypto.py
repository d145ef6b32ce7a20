"""gnt-cluster renew-crypto: replace the REST API's certificate (Ganeti's options; those for
keys cardume does not have yet are refused, naming them).

It runs on the master, as Ganeti's does: the new certificate and key go to the master's
``certs/rapi.pem`` (0600); a SIGHUP tells the master daemon, which keeps the file in the
configuration (so it follows a master failover) and then has the REST daemon load it. The
command returns once the REST daemon serves the new certificate.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time

from cardume import errors, paths
from cardume.cli import common

TYPE_CHECKING = False  # `typing` costs every CLI start ~3 ms; only mypy needs it here
if TYPE_CHECKING:
    from typing import Any

SERVE_WAIT = 30.0  # seconds for the master daemon and the REST daemon to take the file

# Ganeti's other renewals: accepted by the parser, refused with a clear line.
_UNSUPPORTED_FLAGS = ("--new-cluster-certificate", "--new-confd-hmac-key",
                      "--new-cluster-domain-secret", "--new-spice-certificate",
                      "--new-node-certificates", "--new-ssh-keys")
_UNSUPPORTED_VALUES = ("--cluster-domain-secret", "--spice-certificate",
                       "--spice-ca-certificate")


def build(sub: Any) -> None:
    p = sub.add_parser("renew-crypto", help="renew the cluster's certificates "
                       "(the REST API's, in cardume)")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--new-rapi-certificate", action="store_true",
                       help="make a new self-signed certificate for the REST API")
    which.add_argument("--rapi-certificate", metavar="FILE",
                       help="a PEM file holding the REST API's new certificate and its key")
    for flag in _UNSUPPORTED_FLAGS:
        p.add_argument(flag, action="store_true", help="not supported by cardume yet")
    for flag in _UNSUPPORTED_VALUES:
        p.add_argument(flag, metavar="FILE", help="not supported by cardume yet")
    p.add_argument("--ssh-key-bits", help="not supported by cardume yet")
    p.add_argument("--ssh-key-type", help="not supported by cardume yet")
    p.add_argument("--no-ssh-key-check", action="store_true", help="accepted (no SSH)")
    p.add_argument("-f", "--force", "--yes-do-it", dest="force", action="store_true",
                   help="don't ask for confirmation")
    p.add_argument("-v", "--verbose", action="store_true", help="accepted")
    p.add_argument("-d", "--debug", action="store_true", help="accepted")
    p.add_argument("--reason", help="accepted")
    p.set_defaults(func=renew_crypto)


def renew_crypto(args: argparse.Namespace) -> int:
    asked = [flag for flag in (*_UNSUPPORTED_FLAGS, *_UNSUPPORTED_VALUES,
                               "--ssh-key-bits", "--ssh-key-type")
             if getattr(args, flag[2:].replace("-", "_"))]
    if asked:
        raise errors.WrongInput(f"{', '.join(asked)}: not supported by cardume yet "
                                "(only the REST API's certificate can be renewed)")
    if not args.new_rapi_certificate and not args.rapi_certificate:
        raise errors.WrongInput("nothing to renew: pass --new-rapi-certificate or "
                                "--rapi-certificate FILE")
    local = paths.local_node_paths()
    summary = local.read_ssconf()
    name = local.read_identity().get("name")
    if not summary:
        raise errors.NotCluster(f"this node ({name or local.root}) is not part of a cluster")
    if summary.get("master_node") != name:
        raise errors.WrongState(f"renew-crypto runs on the master "
                                f"({summary.get('master_node')}), not on {name}")
    from cardume import tls
    if args.rapi_certificate:
        try:
            with open(args.rapi_certificate, "rb") as handle:
                given = handle.read(1024 * 1024)
        except OSError as err:
            raise errors.WrongInput(f"cannot read --rapi-certificate "
                                    f"{args.rapi_certificate}: {err.strerror}") from None
        cert, key = tls.split_bundle(given, args.rapi_certificate)
        bundle = cert + key
    else:
        bundle = tls.self_signed_bundle(str(summary.get("cluster_name") or name))
    if not args.force and not common.confirm(
            "The REST API will present a new certificate; clients that pinned the old one "
            "must be told the new one. Continue?"):
        print("Not renewed: confirm with -f (or a 'y' at the prompt)", file=sys.stderr)
        return 1
    _write_private(local.rapi_cert, bundle)
    fingerprint = tls.fingerprint(bundle)
    print(f"Wrote the new REST API certificate ({fingerprint}) to {local.rapi_cert}")
    master_pid = _pid(local.pidfile("masterd"))
    if master_pid is None:
        print("The master daemon is not running: it takes the certificate when it starts")
        return 0
    os.kill(master_pid, signal.SIGHUP)
    _wait_served(local, fingerprint)
    print("The REST daemon serves the new certificate")
    return 0


def _write_private(path: str, data: bytes) -> None:
    tmp = f"{path}.tmp{os.getpid()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def _pid(pidfile: str) -> int | None:
    try:
        with open(pidfile, encoding="ascii") as handle:
            pid = int(handle.read().strip())
        os.kill(pid, 0)
    except (OSError, ValueError):
        return None
    return pid


def served_fingerprint(address: str, port: int, timeout: float = 5.0) -> str:
    """The fingerprint of the certificate the REST daemon at address:port presents."""
    import socket
    import ssl

    from cardume import tls
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE  # looking at the certificate is the point
    with socket.create_connection((address, port), timeout) as raw, \
            ctx.wrap_socket(raw) as conn:
        return tls.peer_fingerprint(conn)


def _wait_served(local: paths.NodePaths, fingerprint: str) -> None:
    deadline = time.monotonic() + SERVE_WAIT
    served = "nothing"
    while time.monotonic() < deadline:
        where = paths.read_json(local.rapi_address)
        if where:
            try:
                served = served_fingerprint(str(where["address"]), int(where["port"]))
            except OSError as err:
                served = f"no answer ({err})"
            if served == fingerprint:
                return
        time.sleep(0.1)
    raise errors.EnvironmentProblem(
        f"the REST daemon still serves {served} after {SERVE_WAIT:.0f}s, not the new "
        f"certificate", f"see {local.logfile('masterd')} and {local.logfile('rapi')}")
