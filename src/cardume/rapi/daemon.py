"""The REST daemon's process (``cardume-rapi``): Ganeti's Remote API v2 over HTTPS.

The master daemon starts it on the master node and stops it when it stops (so it follows
the master role), after writing its certificate (``STATE/certs/rapi.pem``) and users file
(``STATE/rapi/users``) from the configuration; extra arguments come from
``STATE/rapi/options``. It listens on the node's address (port 5080), talks to the cluster
only through the master's socket, and writes where it listens to ``STATE/run/rapi.json``.

Signals: TERM/INT stop it; HUP reloads the certificate (the master daemon sends it after a
renewal; connections already open keep theirs). Started by the master daemon it also exits
when that parent dies (``--exit-with-parent``), so a killed master leaves no REST daemon
answering for a cluster it no longer serves.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import hashlib
import logging
import os
import signal
import ssl
import sys

from cardume import errors, sdnotify
from cardume.paths import PRIVATE_UMASK, NodePaths, write_json_atomic
from cardume.rapi import auth
from cardume.rapi.http import HttpServer, Limits, RapiApp
from cardume.rapi.master_link import MasterLink
from cardume.rapi.ui.app import UiApp, WebApp

log = logging.getLogger("cardume.rapi.daemon")

DEFAULT_PORT = 5080
BIND_WAIT = 10.0  # seconds to wait for the port: a predecessor may still be exiting
PARENT_CHECK = 1.0
# TLS 1.2 suites as cardume.tls sets them for the node daemons. The context is built here
# with ssl alone: cardume.tls loads `cryptography` (about 9 MiB of RSS) for what this
# daemon never does, making keys and certificates.
TLS12_CIPHERS = "ECDHE+AESGCM:ECDHE+CHACHA20"


def load_context(cert_file: str) -> ssl.SSLContext:
    """A server context for the PEM holding the certificate and its key (no client
    certificates: clients log in with HTTP Basic)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_ciphers(TLS12_CIPHERS)
    load_chain(ctx, cert_file)
    return ctx


def load_chain(ctx: ssl.SSLContext, cert_file: str) -> None:
    try:
        ctx.load_cert_chain(cert_file, cert_file)
    except FileNotFoundError:
        raise errors.EnvironmentProblem(f"REST API certificate missing: {cert_file}") from None
    except ssl.SSLError as err:
        raise errors.EnvironmentProblem(
            f"cannot load the REST API certificate and key from {cert_file}: "
            f"{err.reason or err}") from None


class RapiDaemon:
    def __init__(self, paths: NodePaths, bind: str, port: int, anonymous_reads: bool,
                 limits: Limits) -> None:
        self.paths = paths
        self.bind = bind
        self.port = port
        self.master = MasterLink(paths.master_socket)
        self.users = auth.UsersFile(paths.rapi_users)
        self.app = RapiApp(self.master, self.users, anonymous_reads)
        self.ui = UiApp(self.master, self.users, paths=paths)  # the web console, under /ui/
        self.server = HttpServer(WebApp(self.app, self.ui), limits)
        self.stopping = asyncio.Event()
        self.context: ssl.SSLContext | None = None

    async def start(self) -> None:
        self.context = load_context(self.paths.rapi_cert)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + BIND_WAIT
        while True:
            try:
                server = await self.server.start(self.bind, self.port, self.context)
                break
            except OSError as err:
                if err.errno != errno.EADDRINUSE or loop.time() > deadline:
                    raise errors.EnvironmentProblem(
                        f"cannot listen on {self.bind or '*'}:{self.port}: "
                        f"{err.strerror or err}") from None
                await asyncio.sleep(0.2)
        sockname = server.sockets[0].getsockname()
        write_json_atomic(self.paths.rapi_address,
                          {"address": sockname[0], "port": sockname[1], "pid": os.getpid()},
                          mode=0o600)
        self.users.users()  # read (and log) the users now rather than at the first request
        log.info("REST API listening on https://%s:%d/ (anonymous reads %s)", sockname[0],
                 sockname[1], "allowed" if self.app.anonymous_reads else "refused")

    def reload(self) -> None:
        """Serve the certificate file's current content from the next handshake on; a
        file that does not load is logged and the current certificate kept."""
        try:
            load_context(self.paths.rapi_cert)  # check it whole before touching the live one
            assert self.context is not None
            load_chain(self.context, self.paths.rapi_cert)  # the next handshakes use it
        except (errors.CardumeError, ssl.SSLError, OSError) as err:
            log.error("keeping the current certificate: %s", err)
            return
        log.info("certificate reloaded from %s (%s)", self.paths.rapi_cert,
                 _fingerprint(self.paths.rapi_cert))

    async def watch_parent(self, parent: int) -> None:
        while os.getppid() == parent:
            await asyncio.sleep(PARENT_CHECK)
        log.warning("the master daemon that started this daemon is gone; stopping")
        self.stopping.set()

    async def stop(self) -> None:
        await self.server.close()
        await self.master.close()
        _remove_if_mine(self.paths.rapi_address)


def _remove_if_mine(path: str) -> None:
    """Remove a pid or address file unless a successor already wrote its own."""
    try:
        with open(path, encoding="ascii") as handle:
            text = handle.read()
    except (OSError, UnicodeDecodeError):
        return
    if text.strip() == str(os.getpid()) or f'"pid": {os.getpid()}' in text:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)


def _fingerprint(path: str) -> str:
    try:
        with open(path, encoding="ascii") as handle:
            pem = handle.read()
        start = pem.index("-----BEGIN CERTIFICATE-----")
        end = pem.index("-----END CERTIFICATE-----", start) + 25
        return "sha256:" + hashlib.sha256(ssl.PEM_cert_to_DER_cert(pem[start:end])).hexdigest()
    except (OSError, ValueError):
        return "unreadable"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="cardume-rapi",
                                     description="cardume REST daemon (Ganeti RAPI v2)")
    parser.add_argument("--root", default="/var/lib/cardume", help="the node's state directory")
    parser.add_argument("--bind", default=None,
                        help="address to listen on (default: the node's address)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT,
                        help=f"port to listen on (default {DEFAULT_PORT})")
    parser.add_argument("--allow-anonymous-reads", action="store_true",
                        help="let requests without credentials read (never write); "
                             "htools in remote mode send none")
    parser.add_argument("--max-connections", type=int, default=Limits.max_connections,
                        help="connections served at once")
    parser.add_argument("--max-body", type=int, default=Limits.max_body,
                        help="largest request body accepted, in bytes")
    parser.add_argument("--exit-with-parent", action="store_true",
                        help="stop when the process that started this one ends (the master "
                             "daemon starts it so)")
    parser.add_argument("--debug", action="store_true", help="log debug messages")
    args = parser.parse_args(argv)
    if not 0 < args.port < 65536:
        parser.error(f"--port {args.port}: expected 1-65535")
    if args.max_connections < 1 or args.max_body < 0:
        parser.error("--max-connections must be at least 1 and --max-body not negative")
    os.umask(PRIVATE_UMASK)
    paths = NodePaths(args.root)
    paths.make_private()
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.INFO,
                        format=sdnotify.log_format("rapi"))
    bind = args.bind if args.bind is not None else \
        str(paths.read_identity().get("address") or "")
    limits = Limits(max_connections=args.max_connections, max_body=args.max_body)
    parent = os.getppid() if args.exit_with_parent else None
    return asyncio.run(_amain(paths, bind, args.port, args.allow_anonymous_reads, limits,
                              parent))


async def _amain(paths: NodePaths, bind: str, port: int, anonymous_reads: bool,
                 limits: Limits, parent: int | None) -> int:
    daemon = RapiDaemon(paths, bind, port, anonymous_reads, limits)
    try:
        await daemon.start()
    except errors.CardumeError as err:
        print(f"cardume-rapi: {err}", file=sys.stderr)
        return err.exit_code
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, daemon.stopping.set)
    loop.add_signal_handler(signal.SIGHUP, daemon.reload)
    watcher = loop.create_task(daemon.watch_parent(parent)) if parent is not None else None
    pidfile = paths.pidfile("rapi")
    with open(pidfile, "w", encoding="ascii") as handle:
        handle.write(f"{os.getpid()}\n")
    sdnotify.ready()
    try:
        await daemon.stopping.wait()
    finally:
        if watcher is not None:
            watcher.cancel()
        await daemon.stop()
        _remove_if_mine(pidfile)
    log.info("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
