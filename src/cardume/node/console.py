"""Serial consoles of kvm instances, relayed over the node daemon's mutual TLS.

Nodes join without root SSH, so ``gnt-instance console`` does not ssh to the node: it runs
``cardume console --node NODE --instance NAME``, which connects to NODE's daemon with this
machine's node certificate (signed by the cluster CA, so only cluster nodes can attach),
calls ``instance_console`` and, once the reply has come, uses the same TLS connection as a
raw byte stream to the instance's serial socket (see :class:`rpc.http.StreamUpgrade`).

On a terminal the console is raw (every key goes to the guest); ``Ctrl-]`` ends it, as in
telnet. Without a terminal (a pipe), what comes on stdin is sent and the output printed
until stdin ends and the guest has been quiet for ``--linger`` seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import select
import socket
import ssl
import sys
import time
from typing import Any

from cardume import errors, tls
from cardume.paths import NodePaths

ESCAPE = b"\x1d"  # Ctrl-]
ESCAPE_NAME = "^]"
CHUNK = 65536

# --- node side ------------------------------------------------------------------------------

_attached: set[str] = set()


async def relay(target: str | tuple[str, int], key: str, reader: asyncio.StreamReader,
                writer: asyncio.StreamWriter) -> None:
    """Copy bytes both ways between a client connection and a console (a serial socket's
    path, or the address and port of a VNC display on this node) until either side
    closes. key names the console (one session at a time per console), claimed by
    :func:`claim`; the claim ends with the relay however it ends, cancelled included (a
    claim left behind would refuse every later session until the daemon restarts)."""
    try:
        await _relay(target, reader, writer)
    finally:
        release(key)


def vnc_target(info: dict[str, Any] | None, name: str) -> tuple[str, int]:
    """Where to reach a running instance's VNC display from this node (a display bound to
    every address is reached on loopback)."""
    where = str((info or {}).get("vnc") or "")
    host, _, port = where.rpartition(":")
    if info is None:
        raise errors.WrongState(f"instance {name} is not running on this node")
    if not host or not port.isdigit():
        raise errors.WrongState(f"instance {name} has no VNC display",
                                "set -H kvm:vnc_bind_address=127.0.0.1 and restart it")
    host = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(host.strip("[]"), host.strip("[]"))
    return host, int(port)


async def _relay(target: str | tuple[str, int], reader: asyncio.StreamReader,
                 writer: asyncio.StreamWriter) -> None:
    try:
        if isinstance(target, str):
            sreader, swriter = await asyncio.open_unix_connection(target)
        else:
            sreader, swriter = await asyncio.open_connection(*target)
    except OSError as err:
        with contextlib.suppress(Exception):
            writer.write(f"\r\ncardume: can't open the console: {err.strerror}\r\n".encode())
            await writer.drain()
        return

    async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, OSError, ssl.SSLError):
            while True:
                data = await src.read(CHUNK)
                if not data:
                    return
                dst.write(data)
                await dst.drain()

    tasks = [asyncio.create_task(pump(reader, swriter)),
             asyncio.create_task(pump(sreader, writer))]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        swriter.close()


def claim(key: str, name: str) -> None:
    """Refuse a second session on one console (QEMU serves one client at a time; a second
    one would wait silently)."""
    if key in _attached:
        raise errors.WrongState(f"the console of instance {name} is in use by another "
                                "session", "close the other session first")
    _attached.add(key)


def release(key: str) -> None:
    """End a claim: its relay ended, or never started (the client left before its reply)."""
    _attached.discard(key)


# --- client side ----------------------------------------------------------------------------

def resolve_node(paths: NodePaths, node: str) -> tuple[str, int]:
    """The address and port of a cluster node, from this node's ssconf."""
    ssconf = paths.read_ssconf() or {}
    found = (ssconf.get("nodes") or {}).get(node)
    if not found:
        raise errors.UnknownEntity(f"node {node} is not in this cluster (per {paths.ssconf})")
    return str(found["ip"]), int(found.get("port") or 1811)


def connect(paths: NodePaths, host: str, port: int, instance: str,
            timeout: float = 30.0) -> tuple[ssl.SSLSocket, bytes]:
    """A TLS connection to the node daemon, switched to the instance's serial console;
    also the console bytes that came with the reply."""
    for path in (paths.node_cert, paths.node_key, paths.ca_cert):
        if not os.path.exists(path):
            raise errors.EnvironmentProblem(f"this machine is not a node of the cluster "
                                            f"({path} is missing)",
                                            "run the console command on a cluster node")
    ctx = tls.client_context(paths.node_cert, paths.node_key, paths.ca_cert)
    try:
        raw = socket.create_connection((host, port), timeout=timeout)
    except OSError as err:
        raise errors.RpcError(f"can't connect to the node daemon at {host}:{port}: "
                              f"{err.strerror or err}") from None
    try:
        sock = ctx.wrap_socket(raw)
        body = json.dumps({"instance": instance}).encode()
        sock.sendall(f"POST /instance_console HTTP/1.1\r\nHost: {host}:{port}\r\n"
                     f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
                     "\r\n".encode() + body)
        buf = b""
        while b"\r\n\r\n" not in buf:
            data = sock.recv(CHUNK)
            if not data:
                raise errors.RpcError(f"node daemon at {host}:{port} closed the connection")
            buf += data
        head, _, rest = buf.partition(b"\r\n\r\n")
        length = 0
        for line in head.decode("latin-1").split("\r\n")[1:]:
            name, _, value = line.partition(":")
            if name.strip().lower() == "content-length":
                length = int(value.strip())
        while len(rest) < length:
            data = sock.recv(CHUNK)
            if not data:
                raise errors.RpcError(f"node daemon at {host}:{port} closed the connection")
            rest += data
        payload = json.loads(rest[:length])
    except (OSError, ValueError) as err:
        raw.close()
        raise errors.RpcError(f"console connection to {host}:{port} failed: {err}") from None
    if not payload.get("ok"):
        sock.close()
        raise errors.from_dict(payload.get("error") or {})
    sock.settimeout(None)
    return sock, rest[length:]


def _read_ready(sock: ssl.SSLSocket, stdin: int, timeout: float | None) -> list[Any]:
    if sock.pending():
        return [sock]
    watched: list[Any] = [sock, stdin] if stdin >= 0 else [sock]
    ready, _, _ = select.select(watched, [], [], timeout)
    return ready


def interact(sock: ssl.SSLSocket, first: bytes, stdin: int, stdout: int,
             linger: float = 1.0) -> int:
    """Relay between the console and this terminal (or pipes) until it ends."""
    tty = os.isatty(stdin)
    saved = None
    if tty:
        import termios
        import tty as ttymod
        saved = termios.tcgetattr(stdin)
        ttymod.setraw(stdin)
    if first:
        os.write(stdout, first)
    stdin_open = True
    quiet_since = time.monotonic()
    try:
        while True:
            wait = None if (tty or stdin_open) else max(0.0, linger -
                                                        (time.monotonic() - quiet_since))
            ready = _read_ready(sock, stdin if stdin_open else -1, wait)
            if not ready:
                return 0  # stdin ended and the guest went quiet
            if sock in ready:
                try:
                    data = sock.recv(CHUNK)
                except ssl.SSLWantReadError:
                    continue
                except OSError:
                    data = b""
                if not data:
                    return 0
                os.write(stdout, data)
                quiet_since = time.monotonic()
            if stdin_open and stdin in ready:
                data = os.read(stdin, CHUNK)
                if tty and ESCAPE in data:
                    data = data.split(ESCAPE, 1)[0]
                    if data:
                        sock.sendall(data)
                    return 0
                if not data:
                    stdin_open = False
                    quiet_since = time.monotonic()
                    continue
                sock.sendall(data)
    finally:
        if saved is not None:
            import termios
            termios.tcsetattr(stdin, termios.TCSADRAIN, saved)
        with contextlib.suppress(OSError):
            sock.close()


def run_console(paths: NodePaths, node: str, instance: str, linger: float = 1.0) -> int:
    host, port = resolve_node(paths, node)
    sock, first = connect(paths, host, port, instance)
    stdin, stdout = sys.stdin.fileno(), sys.stdout.fileno()
    if os.isatty(stdin):
        sys.stderr.write(f"Connected to the serial console of {instance} on {node}. "
                         f"Escape character is '{ESCAPE_NAME}' (Ctrl-]).\r\n")
        sys.stderr.flush()
    code = interact(sock, first, stdin, stdout, linger)
    if os.isatty(stdin):
        sys.stderr.write("\r\nConsole closed.\r\n")
    return code
