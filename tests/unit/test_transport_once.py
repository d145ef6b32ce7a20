"""A node call runs once: idempotency keys, the single resend, and what a dropped call says.

Real mutual TLS on 127.0.0.1 (port 0) with a throwaway CA. Two stand-ins sit where a node
daemon would: ``FakeNode``, a raw TLS server that reads whole requests and answers or drops
them as told (what the client sends, and what it makes of a drop), and ``Relay``, a plain TCP
relay in front of a real RpcServer that cuts connections mid-call (what the server runs).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import ssl
from collections.abc import Awaitable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from fakes_kit import wait_until

from cardume import errors, objects, tls
from cardume.rpc import server as rpc_server
from cardume.rpc.client import NodeRpc
from cardume.rpc.http import PeerInfo
from cardume.rpc.server import RpcServer
from cardume.rpc.transport import RpcClient, call_many

HOST = "127.0.0.1"
KEY = re.compile(r"[0-9a-f]{32}\Z")


@dataclass(frozen=True)
class Certs:
    ca: str
    node: tuple[str, str]
    master: tuple[str, str]
    other: tuple[str, str]  # another node of the same cluster


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    d = tmp_path_factory.mktemp("once-pki")
    ca_cert, ca_key = tls.create_ca("cluster.example")
    (d / "ca.pem").write_bytes(ca_cert)

    def issue(name: str) -> tuple[str, str]:
        key = tls.new_private_key()
        cert = tls.sign_node_cert(ca_cert, ca_key, tls.self_signed(name, key), name, [HOST])
        (d / f"{name}.pem").write_bytes(cert)
        (d / f"{name}.key").write_bytes(key)
        return str(d / f"{name}.pem"), str(d / f"{name}.key")

    return Certs(str(d / "ca.pem"), issue("node1"), issue("master"), issue("node2"))


def server_ctx(certs: Certs) -> ssl.SSLContext:
    return tls.server_context(*certs.node, certs.ca)


def client_ctx(certs: Certs, who: str = "master") -> ssl.SSLContext:
    cert, key = getattr(certs, who)
    return tls.client_context(cert, key, certs.ca)


def run(coro: Awaitable[Any]) -> Any:
    async def main() -> Any:
        return await coro
    return asyncio.run(main())


# --- stand-ins -------------------------------------------------------------------------------


@dataclass
class Seen:
    connection: int
    name: str
    request_id: str | None


@dataclass
class FakeNode:
    """Reads each request whole; drops the first request of each name in ``drop`` (closing
    the connection without a reply byte, after closing its listener if ``die``)."""

    certs: Certs
    drop: set[str] = field(default_factory=set)
    die: bool = False
    reply: bytes | None = None  # raw bytes to send instead of a proper reply
    seen: list[Seen] = field(default_factory=list)
    connections: int = 0
    server: asyncio.Server | None = None

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._serve, HOST, 0, ssl=server_ctx(self.certs))
        return int(self.server.sockets[0].getsockname()[1])

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        connection = self.connections
        try:
            while True:
                head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
                lines = head.split("\r\n")
                headers = {name.strip().lower(): value.strip()
                           for name, _, value in (line.partition(":") for line in lines[1:])}
                await reader.readexactly(int(headers.get("content-length", "0")))
                name = lines[0].split(" ")[1].lstrip("/")
                self.seen.append(Seen(connection, name, headers.get("x-cardume-request-id")))
                if name in self.drop:
                    self.drop.discard(name)
                    if self.die:
                        assert self.server is not None
                        self.server.close()
                    return
                body = json.dumps({"ok": True, "result": {"call": name}}).encode()
                writer.write(self.reply or b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s"
                             % (len(body), body))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
            pass
        except asyncio.CancelledError:
            pass  # the test's loop ends while the client keeps this connection open
        finally:
            writer.close()

    def calls(self, name: str) -> list[Seen]:
        return [seen for seen in self.seen if seen.name == name]


class Relay:
    """A TCP relay to ``port``: TLS passes through untouched; ``cut()`` aborts every open
    connection, ``drop_next_reply`` aborts the next one on which the server sends bytes."""

    def __init__(self, port: int) -> None:
        self.upstream = port
        self.connections = 0
        self.drop_next_reply = False
        self._pairs: set[tuple[asyncio.StreamWriter, asyncio.StreamWriter]] = set()
        self._server: asyncio.Server | None = None

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._relay, HOST, 0)
        return int(self._server.sockets[0].getsockname()[1])

    def cut(self) -> None:
        for pair in list(self._pairs):
            self._abort(pair)

    async def close(self) -> None:
        self.cut()
        if self._server is not None:
            self._server.close()

    def _abort(self, pair: tuple[asyncio.StreamWriter, asyncio.StreamWriter]) -> None:
        self._pairs.discard(pair)
        for writer in pair:
            writer.transport.abort()

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        up_reader, up_writer = await asyncio.open_connection(HOST, self.upstream)
        pair = (writer, up_writer)
        self._pairs.add(pair)

        async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter,
                       from_server: bool) -> None:
            try:
                while data := await src.read(65536):
                    if from_server and self.drop_next_reply:
                        self.drop_next_reply = False
                        break
                    dst.write(data)
                    await dst.drain()
            except OSError:  # ConnectionError included: the other side went away
                pass
            finally:
                self._abort(pair)

        with contextlib.suppress(asyncio.CancelledError):  # the test's loop is ending
            await asyncio.gather(pump(reader, up_writer, False), pump(up_reader, writer, True))


class Counting:
    """A handler that counts its runs and answers how many there were."""

    def __init__(self) -> None:
        self.runs: list[dict[str, Any]] = []

    async def __call__(self, args: dict[str, Any], peer: PeerInfo) -> Any:
        self.runs.append(args)
        return {"runs": len(self.runs)}


def node_at(port: int) -> objects.Node:
    return objects.Node(name="node1", primary_ip=HOST, port=port)


# --- what the client sends -------------------------------------------------------------------


def test_calls_that_change_things_carry_a_fresh_key_and_read_only_calls_none(
        certs: Certs) -> None:
    async def main() -> None:
        fake = FakeNode(certs)
        port = await fake.start()
        rpc = NodeRpc(RpcClient(client_ctx(certs)))
        try:
            await rpc.call(node_at(port), "node_info")
            await rpc.call(node_at(port), "instance_os_add", {"instance": "vm1"})
            await rpc.call(node_at(port), "instance_os_add", {"instance": "vm2"})
            await rpc.call_many([node_at(port)], "blockdev_read", {})
            await call_many(rpc.client, [("n", HOST, port)], "instance_list", {}, 5,
                            readonly=True)
            await call_many(rpc.client, [("n", HOST, port)], "blockdev_remove", {}, 5)
            keys = {seen.name: seen.request_id for seen in fake.seen}
            assert keys["node_info"] is None and keys["blockdev_read"] is None
            assert keys["instance_list"] is None
            adds = [seen.request_id for seen in fake.calls("instance_os_add")]
            assert all(key is not None and KEY.match(key) for key in adds)
            assert adds[0] != adds[1]
            assert keys["blockdev_remove"] is not None
        finally:
            await rpc.client.close()
            await fake.close()
    run(main())


def test_a_resend_after_a_dropped_reused_connection_carries_the_same_key(certs: Certs) -> None:
    async def main() -> None:
        fake = FakeNode(certs, drop={"instance_os_add"})
        port = await fake.start()
        client = RpcClient(client_ctx(certs))
        try:
            await client.call(HOST, port, "node_info", {}, 5, readonly=True)  # pooled
            result = await client.call(HOST, port, "instance_os_add", {}, 5)
            assert result == {"call": "instance_os_add"}
            first, resent = fake.calls("instance_os_add")
            assert (first.connection, resent.connection) == (1, 2)
            assert first.request_id is not None and first.request_id == resent.request_id
        finally:
            await client.close()
            await fake.close()
    run(main())


def test_a_daemon_that_dies_mid_call_is_named_as_such_not_as_refusing(certs: Certs) -> None:
    """Issue 11 item 8: the job said "refused the connection" when a node daemon was
    killed during the call; the resend must not run the call again elsewhere either."""
    async def main() -> None:
        fake = FakeNode(certs, drop={"instance_os_add"}, die=True)
        port = await fake.start()
        client = RpcClient(client_ctx(certs))
        try:
            await client.call(HOST, port, "node_info", {}, 5, readonly=True)
            with pytest.raises(errors.RpcError) as info:
                await client.call(HOST, port, "instance_os_add", {}, 5)
            assert str(info.value) == (
                f"node daemon at {HOST}:{port} dropped the connection during "
                "'instance_os_add' (it may have been stopped or crashed)")
            assert len(fake.calls("instance_os_add")) == 1
        finally:
            await client.close()
            await fake.close()
    run(main())


@pytest.mark.parametrize("die", [True, False], ids=["daemon-gone", "daemon-still-up"])
def test_a_fresh_connection_dropped_after_the_request_says_so(certs: Certs, die: bool) -> None:
    async def main() -> None:
        fake = FakeNode(certs, drop={"instance_os_add"}, die=die)
        port = await fake.start()
        client = RpcClient(client_ctx(certs))
        try:
            with pytest.raises(errors.RpcError) as info:
                await client.call(HOST, port, "instance_os_add", {}, 5)
            message = str(info.value)
            assert message.startswith(f"node daemon at {HOST}:{port} dropped the connection "
                                      "during 'instance_os_add'"), message
            assert "certificate" not in message and "refused" not in message
            assert len(fake.calls("instance_os_add")) == 1  # never resent on a fresh one
        finally:
            await client.close()
            await fake.close()
    run(main())


def test_a_server_refusing_our_certificate_is_still_named(certs: Certs,
                                                         tmp_path: Path) -> None:
    async def main() -> None:
        server = RpcServer({"instance_os_add": Counting()}, server_ctx(certs))
        await server.start(HOST, 0)
        stranger_key = tls.new_private_key()
        (tmp_path / "s.pem").write_bytes(tls.self_signed("master", stranger_key))
        (tmp_path / "s.key").write_bytes(stranger_key)
        client = RpcClient(tls.client_context(str(tmp_path / "s.pem"),
                                              str(tmp_path / "s.key"), certs.ca))
        try:
            with pytest.raises(errors.RpcError, match="rejected our certificate"):
                await client.call(HOST, server.port, "instance_os_add", {}, 5)
            assert server.requests_served == 0
        finally:
            await client.close()
            await server.close()
    run(main())


# --- what the server runs --------------------------------------------------------------------


def test_a_call_cut_off_while_running_runs_once_and_its_resend_gets_the_result(
        certs: Certs) -> None:
    async def main() -> None:
        started, release = asyncio.Event(), asyncio.Event()
        runs = 0

        async def os_add(args: dict[str, Any], peer: PeerInfo) -> Any:
            nonlocal runs
            runs += 1
            started.set()
            await release.wait()
            return {"runs": runs, "args": args}

        server = RpcServer({"node_info": Counting(), "instance_os_add": os_add},
                           server_ctx(certs))
        await server.start(HOST, 0)
        relay = Relay(server.port)
        port = await relay.start()
        client = RpcClient(client_ctx(certs))
        try:
            await client.call(HOST, port, "node_info", {}, 5, readonly=True)
            call = asyncio.create_task(
                client.call(HOST, port, "instance_os_add", {"instance": "vm1"}, 30))
            await asyncio.wait_for(started.wait(), 10)
            relay.cut()  # the connection drops while the OS install runs
            await wait_until(lambda: server.duplicates_answered == 1, "the resend to arrive")
            assert not call.done()  # the resend waits for the first run's outcome
            release.set()
            assert await call == {"runs": 1, "args": {"instance": "vm1"}}
            assert runs == 1 and relay.connections == 2
        finally:
            await client.close()
            await relay.close()
            await server.close()
    run(main())


def test_a_reply_lost_after_the_call_ended_is_sent_again_not_rerun(certs: Certs) -> None:
    async def main() -> None:
        os_add = Counting()
        server = RpcServer({"node_info": Counting(), "instance_os_add": os_add},
                           server_ctx(certs))
        await server.start(HOST, 0)
        relay = Relay(server.port)
        port = await relay.start()
        client = RpcClient(client_ctx(certs))
        try:
            await client.call(HOST, port, "node_info", {}, 5, readonly=True)
            relay.drop_next_reply = True
            assert await client.call(HOST, port, "instance_os_add", {}, 10) == {"runs": 1}
            assert len(os_add.runs) == 1
            assert server.duplicates_answered == 1 and relay.connections == 2
            # A new call is a new key: it runs.
            assert await client.call(HOST, port, "instance_os_add", {}, 10) == {"runs": 2}
        finally:
            await client.close()
            await relay.close()
            await server.close()
    run(main())


def test_read_only_calls_are_resent_on_a_stale_connection_and_not_remembered(
        certs: Certs, monkeypatch: pytest.MonkeyPatch) -> None:
    # The client must not notice the close in advance, so that the resend path runs.
    monkeypatch.setattr(RpcClient, "_is_stale", lambda self, conn, now: False)

    async def main() -> None:
        handlers = {"node_info": Counting(), "instance_os_add": Counting()}
        server = RpcServer(handlers, server_ctx(certs))
        await server.start(HOST, 0)
        port = server.port
        rpc = NodeRpc(RpcClient(client_ctx(certs)))
        try:
            assert await rpc.call(node_at(port), "node_info") == {"runs": 1}
            await server.close()  # restarted between two calls: the pooled one is dead
            handlers = {"node_info": Counting(), "instance_os_add": Counting()}
            server = RpcServer(handlers, server_ctx(certs))
            await server.start(HOST, port)
            assert await rpc.call(node_at(port), "node_info") == {"runs": 1}
            assert server.connections_accepted == 1 and server.requests_served == 1
            assert server.calls_remembered == 0  # read-only replies are not kept
            await rpc.call(node_at(port), "instance_os_add")
            assert server.calls_remembered == 1
        finally:
            await rpc.client.close()
            await server.close()
    run(main())


async def _raw_call(certs: Certs, who: str, port: int, name: str, key: str) -> tuple[int, Any]:
    reader, writer = await asyncio.open_connection(HOST, port, ssl=client_ctx(certs, who))
    try:
        writer.write(f"POST /{name} HTTP/1.1\r\nContent-Length: 2\r\n"
                     f"X-Cardume-Request-Id: {key}\r\n\r\n{{}}".encode())
        head = (await reader.readuntil(b"\r\n\r\n")).decode()
        length = int(head.partition("Content-Length: ")[2].split("\r\n")[0])
        return int(head.split(" ")[1]), json.loads(await reader.readexactly(length))
    finally:
        writer.close()


def test_keys_belong_to_the_calling_certificate(certs: Certs) -> None:
    async def main() -> None:
        os_add, remove = Counting(), Counting()
        server = RpcServer({"instance_os_add": os_add, "blockdev_remove": remove},
                           server_ctx(certs))
        await server.start(HOST, 0)
        key = "0123456789abcdef0123456789abcdef"
        try:
            first = await _raw_call(certs, "master", server.port, "instance_os_add", key)
            again = await _raw_call(certs, "master", server.port, "instance_os_add", key)
            assert first == again == (200, {"ok": True, "result": {"runs": 1}})
            # Another certificate with the same key is another call.
            other = await _raw_call(certs, "other", server.port, "instance_os_add", key)
            assert other == (200, {"ok": True, "result": {"runs": 2}})
            # A key is one call: reusing it for another call is refused, nothing runs.
            status, reply = await _raw_call(certs, "master", server.port, "blockdev_remove",
                                            key)
            assert status == 400 and "already used for 'instance_os_add'" in \
                reply["error"]["message"]
            assert remove.runs == []
            status, reply = await _raw_call(certs, "master", server.port, "instance_os_add",
                                            "short")
            assert status == 400 and "X-Cardume-Request-Id" in reply["error"]["message"]
        finally:
            await server.close()
    run(main())


def test_remembered_outcomes_are_bounded() -> None:
    async def main() -> None:
        once = rpc_server._Once(ttl=60.0, max_entries=2, max_bytes=100)
        for n in range(3):
            once.start(("sha256:a", str(n)), "instance_os_add")
            once.end(("sha256:a", str(n)), 200, b"x" * 10)
        assert once.get(("sha256:a", "0")) is None and len(once) == 2
        once.start(("sha256:a", "big"), "instance_os_add")
        assert len(once) == 3  # a running call is never forgotten
        once.end(("sha256:a", "big"), 200, b"x" * 95)
        assert once.get(("sha256:a", "big")) is not None
        assert once.get(("sha256:a", "1")) is None and once.get(("sha256:a", "2")) is None
        expiring = rpc_server._Once(ttl=0.0)
        expiring.start(("sha256:a", "k"), "instance_os_add")
        expiring.end(("sha256:a", "k"), 200, b"{}")
        assert len(expiring) == 0
    run(main())


# --- the client reading bad replies ----------------------------------------------------------


@pytest.mark.parametrize("reply", [
    b"HTTP/1.1 \xb200 OK\r\nContent-Length: 2\r\n\r\n{}",
    b"HTTP/1.1 200 OK\r\nContent-Length: \xb2\r\n\r\n{}",
    b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}",
    b"HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999999\r\n\r\n{}",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 2\r\n\r\n{}",
    b"HTTP/1.1 200 OK\r\nContent-Length: 200000\r\n\r\n" + b"[" * 100_000 + b"]" * 100_000,
], ids=["unicode-status", "unicode-length", "two-lengths", "huge-length", "chunked",
        "deep-json"])
def test_a_malformed_reply_is_a_one_line_error(certs: Certs, reply: bytes) -> None:
    async def main() -> None:
        fake = FakeNode(certs, reply=reply)
        port = await fake.start()
        client = RpcClient(client_ctx(certs))
        try:
            with pytest.raises(errors.RpcError) as info:
                await client.call(HOST, port, "node_info", {}, 5, readonly=True)
            message = str(info.value)
            assert message.startswith(f"node daemon at {HOST}:{port} sent an invalid reply "
                                      "to 'node_info'"), message
            assert "\n" not in message
        finally:
            await client.close()
            await fake.close()
    run(main())
