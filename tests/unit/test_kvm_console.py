"""The console relay: a node RPC whose connection, after the reply, carries the bytes of a
serial socket (mutual TLS, one session per console), and its synchronous client."""

from __future__ import annotations

import asyncio
import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cardume import errors, tls
from cardume.node import console
from cardume.paths import NodePaths
from cardume.rpc.http import PeerInfo, StreamUpgrade
from cardume.rpc.server import RpcServer

HOST = "127.0.0.1"


def make_node(root: Path, ca_cert: bytes, ca_key: bytes, name: str) -> NodePaths:
    paths = NodePaths(str(root))
    os.makedirs(paths.certs)
    key = tls.new_private_key()
    cert = tls.sign_node_cert(ca_cert, ca_key, tls.self_signed(name, key), name, [HOST])
    Path(paths.node_key).write_bytes(key)
    Path(paths.node_cert).write_bytes(cert)
    Path(paths.ca_cert).write_bytes(ca_cert)
    return paths


class Serial:
    """A unix socket answering every line in capitals (a guest's shell, roughly)."""

    def __init__(self, path: str) -> None:
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.bind(path)
        self.sock.listen(1)
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                while data := conn.recv(4096):
                    conn.sendall(data.upper())


@pytest.fixture
def node(tmp_path: Path) -> Iterator[tuple[NodePaths, int]]:
    ca_cert, ca_key = tls.create_ca("cluster.example")
    server_paths = make_node(tmp_path / "node1", ca_cert, ca_key, "node1")
    client_paths = make_node(tmp_path / "node2", ca_cert, ca_key, "node2")
    serial = str(tmp_path / "vm1.serial")
    Serial(serial)

    async def instance_console(args: dict[str, Any], peer: PeerInfo) -> StreamUpgrade:
        if args.get("instance") != "vm1":
            raise errors.WrongState(f"instance {args.get('instance')} is not running")
        console.claim("kvm:vm1", "vm1")

        async def run(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await console.relay(serial, "kvm:vm1", reader, writer)
        return StreamUpgrade({"instance": "vm1"}, run)

    loop = asyncio.new_event_loop()
    server = RpcServer({"instance_console": instance_console},
                       tls.server_context(server_paths.node_cert, server_paths.node_key,
                                          server_paths.ca_cert))
    loop.run_until_complete(server.start(HOST, 0))
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        yield client_paths, server.port
        # The console's claim is the node module's, shared by the tests of this process: the
        # session a test closed last must be over on the node before the next test attaches
        # (closing the server while the relay still ends could cancel it before it let go,
        # and the next test found the console 'in use by another session').
        deadline = time.monotonic() + 10
        while "kvm:vm1" in console._attached:
            assert time.monotonic() < deadline, "the node kept the console claimed"
            time.sleep(0.01)
    finally:
        asyncio.run_coroutine_threadsafe(server.close(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


def read_until(sock: Any, needle: bytes, timeout: float = 10.0) -> bytes:
    sock.settimeout(timeout)
    seen = b""
    while needle not in seen:
        data = sock.recv(4096)
        assert data, f"connection closed before {needle!r} ({seen!r})"
        seen += data
    return seen


def test_relay_both_ways_and_one_session_at_a_time(node: tuple[NodePaths, int]) -> None:
    paths, port = node
    sock, first = console.connect(paths, HOST, port, "vm1")
    assert first == b""
    sock.sendall(b"echo hi\n")
    assert b"ECHO HI" in read_until(sock, b"ECHO HI")
    with pytest.raises(errors.WrongState, match="in use by another session"):
        console.connect(paths, HOST, port, "vm1")
    sock.close()
    deadline = time.monotonic() + 10
    while True:  # the node notices the end of the first session
        try:
            again, _ = console.connect(paths, HOST, port, "vm1")
            break
        except errors.WrongState:
            assert time.monotonic() < deadline
            time.sleep(0.05)
    again.sendall(b"x\n")
    read_until(again, b"X")
    again.close()


def test_errors_come_back_as_errors(node: tuple[NodePaths, int]) -> None:
    paths, port = node
    with pytest.raises(errors.WrongState, match="instance vm9 is not running"):
        console.connect(paths, HOST, port, "vm9")


def test_only_cluster_nodes_can_attach(node: tuple[NodePaths, int], tmp_path: Path) -> None:
    _, port = node
    other_ca, other_key = tls.create_ca("other.example")
    stranger = make_node(tmp_path / "stranger", other_ca, other_key, "node1")
    with pytest.raises(errors.RpcError):
        console.connect(stranger, HOST, port, "vm1")
    with pytest.raises(errors.EnvironmentProblem, match="not a node of the cluster"):
        console.connect(NodePaths(str(tmp_path / "nowhere")), HOST, port, "vm1")


def test_interact_with_pipes(node: tuple[NodePaths, int]) -> None:
    paths, port = node
    sock, first = console.connect(paths, HOST, port, "vm1")
    stdin_r, stdin_w = os.pipe()
    stdout_r, stdout_w = os.pipe()
    os.write(stdin_w, b"uname\n")
    os.close(stdin_w)
    assert console.interact(sock, first, stdin_r, stdout_w, linger=0.5) == 0
    os.close(stdout_w)
    with os.fdopen(stdout_r, "rb") as out:
        assert b"UNAME" in out.read()
    os.close(stdin_r)


def test_resolve_node(tmp_path: Path) -> None:
    paths = NodePaths(str(tmp_path))
    Path(paths.ssconf).write_text('{"nodes": {"node2": {"ip": "10.0.0.2", "port": 1811}}}')
    assert console.resolve_node(paths, "node2") == ("10.0.0.2", 1811)
    with pytest.raises(errors.UnknownEntity, match="node node7 is not in this cluster"):
        console.resolve_node(paths, "node7")


class _NullWriter:
    """The client's side of a relay, for tests that never get as far as copying bytes."""

    def write(self, data: bytes) -> None:
        pass

    async def drain(self) -> None:
        pass


def test_a_relay_cancelled_at_any_point_gives_the_console_back(tmp_path: Path) -> None:
    """A daemon closing a connection mid-session (shutdown, a dropped client) cancels the
    relay; the console must be free for the next session, not 'in use' until a restart."""
    serial = str(tmp_path / "vm2.serial")
    Serial(serial)

    async def scenario(steps: int) -> None:
        console.claim("kvm:vm2", "vm2")
        relay = asyncio.create_task(console.relay(serial, "kvm:vm2", asyncio.StreamReader(),
                                                  _NullWriter()))  # type: ignore[arg-type]
        for _ in range(steps):  # cancelled while opening the serial socket, or pumping
            await asyncio.sleep(0)
        relay.cancel()
        await asyncio.gather(relay, return_exceptions=True)
        assert "kvm:vm2" not in console._attached
        console.claim("kvm:vm2", "vm2")  # a new session is welcome
        console.release("kvm:vm2")

    for steps in (1, 2, 3, 5, 20):
        asyncio.run(scenario(steps))


def test_a_console_whose_socket_is_gone_is_not_left_claimed(tmp_path: Path) -> None:
    async def scenario() -> None:
        console.claim("kvm:vm3", "vm3")
        await console.relay(str(tmp_path / "missing.serial"), "kvm:vm3",
                             asyncio.StreamReader(), _NullWriter())  # type: ignore[arg-type]
    asyncio.run(scenario())
    assert "kvm:vm3" not in console._attached
