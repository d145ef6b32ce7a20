"""JSON RPC over TLS on loopback: servers on 127.0.0.1 port 0, each test inside asyncio.run."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fakes_kit import wait_until

from cardume import errors, tls
from cardume.rpc import transport
from cardume.rpc.http import PeerInfo
from cardume.rpc.server import UNVERIFIED_MAX_CONNECTIONS, RpcServer
from cardume.rpc.transport import RpcClient, call_many

HOST = "127.0.0.1"


@dataclass(frozen=True)
class Pki:
    ca_file: str
    node_cert: bytes
    node_self: bytes
    node_cert_file: str
    node_self_file: str
    node_key_file: str
    master_cert: bytes
    master_cert_file: str
    master_key_file: str
    intruder_cert_file: str
    intruder_key_file: str


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    d = tmp_path_factory.mktemp("pki")

    def write(name: str, data: bytes) -> str:
        (d / name).write_bytes(data)
        return str(d / name)

    ca_cert, ca_key = tls.create_ca("cluster.example")
    node_key = tls.new_private_key()
    node_self = tls.self_signed("node1", node_key)
    node_cert = tls.sign_node_cert(ca_cert, ca_key, node_self, "node1", [HOST])
    master_key = tls.new_private_key()
    master_cert = tls.sign_node_cert(ca_cert, ca_key, tls.self_signed("master", master_key),
                                     "master", [HOST])
    intruder_key = tls.new_private_key()
    return Pki(
        ca_file=write("ca.pem", ca_cert), node_cert=node_cert, node_self=node_self,
        node_cert_file=write("node.pem", node_cert),
        node_self_file=write("node-self.pem", node_self),
        node_key_file=write("node.key", node_key),
        master_cert=master_cert, master_cert_file=write("master.pem", master_cert),
        master_key_file=write("master.key", master_key),
        intruder_cert_file=write("intruder.pem", tls.self_signed("master", intruder_key)),
        intruder_key_file=write("intruder.key", intruder_key),
    )


def node_server_ctx(pki: Pki) -> ssl.SSLContext:
    return tls.server_context(pki.node_cert_file, pki.node_key_file, pki.ca_file)


def master_client(pki: Pki) -> RpcClient:
    return RpcClient(tls.client_context(pki.master_cert_file, pki.master_key_file, pki.ca_file))


async def echo(args: dict[str, Any], peer: PeerInfo) -> Any:
    return {"args": args, "verified": peer.verified, "fingerprint": peer.fingerprint,
            "address": peer.address}


async def fail_wrong_state(args: dict[str, Any], peer: PeerInfo) -> Any:
    raise errors.WrongState("instance web1 is running", hint="stop it first")


async def fail_bug(args: dict[str, Any], peer: PeerInfo) -> Any:
    raise KeyError("disk_template")


async def slow(args: dict[str, Any], peer: PeerInfo) -> Any:
    await asyncio.sleep(float(args.get("seconds", 0.2)))
    return "done"


HANDLERS: dict[str, Callable[[dict[str, Any], PeerInfo], Awaitable[Any]]] = {
    "echo": echo, "join": echo, "fail_wrong_state": fail_wrong_state, "fail_bug": fail_bug,
    "slow": slow,
}


def run(coro: Awaitable[Any]) -> Any:
    async def main() -> Any:
        return await coro
    return asyncio.run(main())


def dead_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


async def raw_request(pki: Pki, port: int, data: bytes,
                      ctx: ssl.SSLContext | None = None) -> tuple[int, bytes]:
    """Send raw bytes over mutual TLS (or ``ctx``); return the status and body of the first
    reply."""
    if ctx is None:
        ctx = tls.client_context(pki.master_cert_file, pki.master_key_file, pki.ca_file)
    reader, writer = await asyncio.open_connection(HOST, port, ssl=ctx)
    try:
        async with asyncio.timeout(30):  # a server waiting for more must fail the test
            writer.write(data)
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head.split(b" ", 2)[1])
            length = 0
            for line in head.split(b"\r\n")[1:]:
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            return status, await reader.readexactly(length)
    finally:
        writer.close()


# --- mutual TLS ------------------------------------------------------------------------------


def test_ca_signed_client_gets_answers(pki: Pki) -> None:
    async def main() -> None:
        server = RpcServer(HANDLERS, node_server_ctx(pki))
        await server.start(HOST, 0)
        client = master_client(pki)
        try:
            result = await client.call(HOST, server.port, "echo", {"x": [1, "ü"]}, 5)
            assert result["args"] == {"x": [1, "ü"]}
            assert result["verified"] is True
            assert result["fingerprint"] == tls.fingerprint(pki.master_cert)
            assert result["address"] == HOST
        finally:
            await client.close()
            await server.close()
    run(main())


def test_self_signed_client_is_refused(pki: Pki) -> None:
    async def main() -> None:
        server = RpcServer(HANDLERS, node_server_ctx(pki))
        await server.start(HOST, 0)
        client = RpcClient(tls.client_context(pki.intruder_cert_file, pki.intruder_key_file,
                                              pki.ca_file))
        try:
            with pytest.raises(errors.RpcError) as info:
                await client.call(HOST, server.port, "echo", {}, 5)
            assert f"{HOST}:{server.port}" in str(info.value)
            assert "rejected our certificate" in str(info.value)
            assert server.requests_served == 0
        finally:
            await client.close()
            await server.close()
    run(main())


def test_client_without_cert_is_refused(pki: Pki) -> None:
    async def main() -> None:
        server = RpcServer(HANDLERS, node_server_ctx(pki))
        await server.start(HOST, 0)
        client = RpcClient(tls.client_context(None, None, pki.ca_file))
        try:
            with pytest.raises(errors.RpcError, match="rejected our certificate"):
                await client.call(HOST, server.port, "echo", {}, 5)
            assert server.requests_served == 0
        finally:
            await client.close()
            await server.close()
    run(main())


def test_server_not_signed_by_ca_is_refused(pki: Pki) -> None:
    async def main() -> None:
        server = RpcServer(HANDLERS, tls.server_context(pki.node_self_file, pki.node_key_file,
                                                        None))
        await server.start(HOST, 0)
        client = master_client(pki)
        try:
            with pytest.raises(errors.RpcError, match="not signed by the cluster CA"):
                await client.call(HOST, server.port, "echo", {}, 5)
        finally:
            await client.close()
            await server.close()
    run(main())


# --- join mode and reload ----------------------------------------------------------------------


def test_join_mode_serves_only_public_calls(pki: Pki) -> None:
    async def main() -> None:
        ctx = tls.server_context(pki.node_self_file, pki.node_key_file, None)
        server = RpcServer(HANDLERS, ctx, public={"join"})
        await server.start(HOST, 0)
        node_fp = tls.fingerprint(pki.node_self)
        client = RpcClient(tls.pinned_client_context())
        try:
            der = await client.peer_certificate(HOST, server.port, 5)
            assert tls.fingerprint(der) == node_fp
            result = await client.call(HOST, server.port, "join", {"a": 1}, 5, pin=node_fp)
            assert result["verified"] is False and result["fingerprint"] is None
            assert server.connections_accepted == 1
            with pytest.raises(errors.RpcError, match="refused") as info:
                await client.call(HOST, server.port, "echo", {}, 5)
            assert "not joined" in str(info.value)
            # A CA-signed client is not asked for its certificate: still unverified.
            ca_client = master_client(pki)
            with pytest.raises(errors.RpcError, match="not signed by the cluster CA"):
                await ca_client.call(HOST, server.port, "echo", {}, 5)
            await ca_client.close()
            with pytest.raises(errors.RpcError, match="expected sha256:00"):
                await client.call(HOST, server.port, "join", {}, 5, pin="sha256:00")
        finally:
            await client.close()
            await server.close()
    run(main())


def test_reload_switches_join_server_to_mutual_tls(pki: Pki) -> None:
    async def main() -> None:
        ctx = tls.server_context(pki.node_self_file, pki.node_key_file, None)
        server = RpcServer(HANDLERS, ctx, public={"join"})
        await server.start(HOST, 0)
        port = server.port
        pinned = RpcClient(tls.pinned_client_context())
        master = master_client(pki)
        try:
            await pinned.call(HOST, port, "join", {}, 5, pin=tls.fingerprint(pki.node_self))
            tls.reload_server_context(ctx, pki.node_cert_file, pki.node_key_file, pki.ca_file)
            result = await master.call(HOST, port, "echo", {}, 5)
            assert result["verified"] is True
            anonymous = RpcClient(tls.pinned_client_context())
            with pytest.raises(errors.RpcError, match="rejected our certificate"):
                await anonymous.call(HOST, port, "join", {}, 5)
            await anonymous.close()
            der = await master.peer_certificate(HOST, port, 5)
            assert tls.fingerprint(der) == tls.fingerprint(pki.node_cert)
        finally:
            await pinned.close()
            await master.close()
            await server.close()
    run(main())


# --- errors ----------------------------------------------------------------------------------


def test_error_round_trip_keeps_class_and_message(pki: Pki) -> None:
    async def main() -> None:
        server = RpcServer(HANDLERS, node_server_ctx(pki))
        await server.start(HOST, 0)
        client = master_client(pki)
        try:
            with pytest.raises(errors.WrongState) as info:
                await client.call(HOST, server.port, "fail_wrong_state", {}, 5)
            assert info.value.message == "instance web1 is running"
            assert info.value.hint == "stop it first"
            with pytest.raises(errors.InternalError, match="KeyError") as bug:
                await client.call(HOST, server.port, "fail_bug", {}, 5)
            assert "disk_template" in bug.value.message
            # The connection survives errors.
            assert (await client.call(HOST, server.port, "echo", {}, 5))["verified"]
            assert server.connections_accepted == 1
        finally:
            await client.close()
            await server.close()
    run(main())


def test_unknown_call_is_404(pki: Pki) -> None:
    async def main() -> None:
        server = RpcServer(HANDLERS, node_server_ctx(pki))
        await server.start(HOST, 0)
        client = master_client(pki)
        try:
            with pytest.raises(errors.RpcError, match="unknown RPC call 'nope'") as info:
                await client.call(HOST, server.port, "nope", {}, 5)
            assert f"{HOST}:{server.port}" in str(info.value)
            status, body = await raw_request(
                pki, server.port, b"POST /nope HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}")
            assert status == 404 and b'"ok":false' in body
        finally:
            await client.close()
            await server.close()
    run(main())


def test_http_level_errors(pki: Pki) -> None:
    async def main() -> None:
        server = RpcServer(HANDLERS, node_server_ctx(pki), max_body=1000)
        await server.start(HOST, 0)
        port = server.port
        try:
            status, body = await raw_request(pki, port, b"GET /echo HTTP/1.1\r\n\r\n")
            assert status == 405
            status, body = await raw_request(
                pki, port, b"POST /echo HTTP/1.1\r\nContent-Length: 5\r\n\r\n{nope")
            assert status == 400 and b"not valid JSON" in body
            status, body = await raw_request(
                pki, port, b"POST /echo HTTP/1.1\r\nContent-Length: 2\r\n\r\n[]")
            assert status == 400 and b"JSON object" in body
            status, body = await raw_request(pki, port, b"GET /health HTTP/1.1\r\n\r\n")
            assert (status, body) == (200, b'{"ok":true}')
            status, body = await raw_request(
                pki, port, b"POST /echo HTTP/1.1\r\nContent-Length: 5000\r\n\r\n" + b" " * 5000)
            assert status == 413
            client = master_client(pki)
            with pytest.raises(errors.WrongInput, match="exceeds the limit"):
                await client.call(HOST, port, "echo", {"blob": "x" * 2000}, 5)
            assert (await client.call(HOST, port, "echo", {"blob": "x" * 900}, 5))["verified"]
            await client.close()
        finally:
            await server.close()
    run(main())


def test_large_body(pki: Pki) -> None:
    async def main() -> None:
        server = RpcServer({"size": lambda args, peer: _size(args)}, node_server_ctx(pki))
        await server.start(HOST, 0)
        client = master_client(pki)
        try:
            blob = "x" * (8 * 1024 * 1024)
            assert await client.call(HOST, server.port, "size", {"blob": blob}, 30) == len(blob)
        finally:
            await client.close()
            await server.close()
    run(main())


async def _size(args: dict[str, Any]) -> int:
    return len(args["blob"])


def test_refused_and_timeout(pki: Pki) -> None:
    async def main() -> None:
        server = RpcServer(HANDLERS, node_server_ctx(pki))
        await server.start(HOST, 0)
        client = master_client(pki)
        port = dead_port()
        try:
            with pytest.raises(errors.RpcError) as info:
                await client.call(HOST, port, "echo", {}, 5)
            assert str(info.value) == (f"node daemon at {HOST}:{port} refused the connection "
                                       "(is cardume-noded running?)")
            with pytest.raises(errors.RpcError, match=r"did not answer 'slow' within 0.1s"):
                await client.call(HOST, server.port, "slow", {"seconds": 2}, 0.1)
            # A timed-out connection is dropped; the next call works on a new one.
            assert await client.call(HOST, server.port, "slow", {"seconds": 0}, 5) == "done"
        finally:
            await client.close()
            await server.close()
    run(main())


# --- connection reuse ----------------------------------------------------------------------------


def test_keep_alive_reuses_one_connection(pki: Pki) -> None:
    async def main() -> None:
        server = RpcServer(HANDLERS, node_server_ctx(pki))
        await server.start(HOST, 0)
        client = master_client(pki)
        try:
            for i in range(100):
                result = await client.call(HOST, server.port, "echo", {"i": i}, 5)
                assert result["args"] == {"i": i}
            assert server.connections_accepted == 1
            assert server.requests_served == 100
        finally:
            await client.close()
            await server.close()
    run(main())


def test_busy_connections_open_another(pki: Pki) -> None:
    async def main() -> None:
        server = RpcServer(HANDLERS, node_server_ctx(pki))
        await server.start(HOST, 0)
        client = master_client(pki)
        try:
            calls = [client.call(HOST, server.port, "slow", {"seconds": 0.1}, 5)
                     for _ in range(3)]
            assert await asyncio.gather(*calls) == ["done"] * 3
            assert server.connections_accepted == 3
            for _ in range(5):
                await client.call(HOST, server.port, "echo", {}, 5)
            assert server.connections_accepted == 3
        finally:
            await client.close()
            await server.close()
    run(main())


def test_stale_keep_alive_is_retried(pki: Pki, monkeypatch: pytest.MonkeyPatch) -> None:
    # The client must not notice the close in advance, so that the retry path runs.
    monkeypatch.setattr(RpcClient, "_is_stale", lambda self, conn, now: False)

    async def main() -> None:
        server = RpcServer(HANDLERS, node_server_ctx(pki))
        await server.start(HOST, 0)
        port = server.port
        client = master_client(pki)
        try:
            await client.call(HOST, port, "echo", {}, 5)
            # Restart the server on the same port: the kept-alive connection is now dead.
            await server.close()
            server = RpcServer(HANDLERS, node_server_ctx(pki))
            await server.start(HOST, port)
            assert (await client.call(HOST, port, "echo", {"n": 2}, 5))["args"] == {"n": 2}
            assert server.connections_accepted == 1
            assert server.requests_served == 1
        finally:
            await client.close()
            await server.close()
    run(main())


def test_server_idle_timeout_then_new_connection(pki: Pki) -> None:
    async def main() -> None:
        server = RpcServer(HANDLERS, node_server_ctx(pki), idle_timeout=0.05)
        await server.start(HOST, 0)
        client = master_client(pki)
        try:
            await client.call(HOST, server.port, "echo", {}, 5)
            await wait_until(lambda: server.open_connections == 0,
                             "the idle connection closed by the server")
            await client.call(HOST, server.port, "echo", {}, 5)
            assert server.connections_accepted == 2
        finally:
            await client.close()
            await server.close()
    run(main())


# --- fan-out ---------------------------------------------------------------------------------


def test_call_many_reports_each_target(pki: Pki) -> None:
    async def main() -> None:
        server_a = RpcServer(HANDLERS, node_server_ctx(pki))
        server_b = RpcServer(HANDLERS, node_server_ctx(pki))
        await server_a.start(HOST, 0)
        await server_b.start(HOST, 0)
        client = master_client(pki)
        dead = dead_port()
        try:
            results = await call_many(client, [("a", HOST, server_a.port),
                                               ("b", HOST, server_b.port),
                                               ("dead", HOST, dead)], "echo", {"q": 1}, 5)
            assert set(results) == {"a", "b", "dead"}
            assert results["a"].ok and results["a"].value["args"] == {"q": 1}
            assert results["b"].unwrap()["args"] == {"q": 1}
            error = results["dead"].error
            assert isinstance(error, errors.RpcError)
            assert f"{HOST}:{dead}" in str(error) and error.node == "dead"
            with pytest.raises(errors.RpcError):
                results["dead"].unwrap()
            failing = await call_many(client, [("a", HOST, server_a.port)],
                                      "fail_wrong_state", {}, 5)
            assert isinstance(failing["a"].error, errors.WrongState)
        finally:
            await client.close()
            await server_a.close()
            await server_b.close()
    run(main())


def test_result_type() -> None:
    assert transport.Result(value=3).unwrap() == 3
    assert not transport.Result(error=errors.RpcError("x")).ok


def test_port_before_start(pki: Pki, tmp_path: Path) -> None:
    server = RpcServer(HANDLERS, node_server_ctx(pki))
    with pytest.raises(errors.WrongState):
        _ = server.port


def test_client_sockets_give_up_on_a_silent_peer() -> None:
    """A node whose power was cut must fail a call in seconds, not after TCP's ~15 minutes
    of retransmissions: the client's sockets carry a user timeout and keepalive probes."""
    import socket

    from cardume.rpc import transport
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        transport._tune(sock)
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT) == \
            transport.TCP_USER_TIMEOUT_MS <= 30_000
        idle, interval, count = transport.KEEPALIVE
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE) == idle
        assert idle + interval * count <= 30
    finally:
        sock.close()


# --- authorization hook ------------------------------------------------------------------------


def test_authorize_refuses_with_403_before_the_body_is_read(pki: Pki) -> None:
    asked: list[tuple[str, str | None]] = []

    def master_only(name: str, peer: PeerInfo) -> str | None:
        asked.append((name, peer.fingerprint))
        if name == "fail_bug":
            raise RuntimeError("policy bug")
        return None if name == "echo" else f"'{name}' may only be called by the master"

    async def main() -> None:
        server = RpcServer(HANDLERS, node_server_ctx(pki), public={"join"},
                           authorize=master_only)
        await server.start(HOST, 0)
        port = server.port
        client = master_client(pki)
        try:
            assert (await client.call(HOST, port, "echo", {}, 5))["verified"] is True
            with pytest.raises(errors.RpcError) as info:
                await client.call(HOST, port, "slow", {"seconds": 0}, 5)
            assert str(info.value) == (f"node daemon at {HOST}:{port}: 'slow' may only be "
                                       "called by the master")
            # The refusal comes although the 50 MB body it announces never does.
            status, body = await raw_request(
                pki, port, b"POST /slow HTTP/1.1\r\nContent-Length: 50000000\r\n\r\n")
            assert status == 403
            assert json.loads(body)["error"]["message"] == \
                "'slow' may only be called by the master"
            # Public calls are not the policy's business.
            assert (await client.call(HOST, port, "join", {}, 5))["verified"] is True
            assert "join" not in {name for name, _ in asked}
            assert {fp for _, fp in asked} == {tls.fingerprint(pki.master_cert)}
            # A policy that fails refuses the call instead of letting it through.
            with pytest.raises(errors.InternalError, match="authorizing 'fail_bug' failed"):
                await client.call(HOST, port, "fail_bug", {}, 5)
            assert server.requests_served == 2  # echo and join: nothing refused ran
        finally:
            await client.close()
            await server.close()
    run(main())


# --- limits for clients without a cluster certificate -----------------------------------------


def test_unverified_clients_get_small_limits(pki: Pki) -> None:
    async def main() -> None:
        ctx = tls.server_context(pki.node_self_file, pki.node_key_file, None)
        server = RpcServer(HANDLERS, ctx, public={"join"})
        await server.start(HOST, 0)
        port = server.port
        pinned = RpcClient(tls.pinned_client_context())
        anonymous = tls.pinned_client_context()
        try:
            # A join carries two certificates and the cluster summary: well below the limit.
            blob = "x" * 200_000
            result = await pinned.call(HOST, port, "join", {"blob": blob}, 5)
            assert result["args"]["blob"] == blob and result["verified"] is False
            with pytest.raises(errors.WrongInput, match=r"exceeds the limit of 262144"):
                await pinned.call(HOST, port, "join", {"blob": "x" * 300_000}, 5)
            # Refused from its announced length alone: the 60 MiB never have to come.
            status, body = await raw_request(
                pki, port, b"POST /join HTTP/1.1\r\nContent-Length: 62914560\r\n\r\n",
                anonymous)
            assert status == 413 and b"exceeds the limit of 262144" in body
            status, body = await raw_request(
                pki, port, b"POST /join HTTP/1.1\r\nX-Pad: " + b"a" * 10_000
                + b"\r\nContent-Length: 2\r\n\r\n{}", anonymous)
            assert status == 431 and b"larger than 8192 bytes" in body
        finally:
            await pinned.close()
            await server.close()

        # A client with a cluster certificate may send far more.
        server = RpcServer(HANDLERS, node_server_ctx(pki))
        await server.start(HOST, 0)
        client = master_client(pki)
        try:
            big = "y" * (2 * 1024 * 1024)
            assert (await client.call(HOST, server.port, "echo", {"b": big}, 10))["args"] == \
                {"b": big}
        finally:
            await client.close()
            await server.close()
    run(main())


def test_unverified_connections_are_few_and_short_lived(pki: Pki) -> None:
    async def main() -> None:
        ctx = tls.server_context(pki.node_self_file, pki.node_key_file, None)
        server = RpcServer(HANDLERS, ctx, public={"join"}, unverified_timeout=0.3)
        await server.start(HOST, 0)
        anonymous = tls.pinned_client_context()
        held = []
        try:
            for _ in range(UNVERIFIED_MAX_CONNECTIONS):
                held.append(await asyncio.open_connection(HOST, server.port, ssl=anonymous))
            await wait_until(lambda: server.open_connections == len(held),
                             "the server to take every connection")
            status, body = await raw_request(pki, server.port,
                                             b"GET /health HTTP/1.1\r\n\r\n", anonymous)
            assert status == 503 and b"too many connections" in body
            # Idle ones are closed after the short timeout, and room is made again.
            await wait_until(lambda: server.open_connections == 0, "idle connections to close")
            status, body = await raw_request(pki, server.port,
                                             b"GET /health HTTP/1.1\r\n\r\n", anonymous)
            assert (status, body) == (200, b'{"ok":true}')
        finally:
            for _, writer in held:
                writer.close()
            await server.close()
    run(main())


# --- malformed requests -------------------------------------------------------------------------


def _post(headers: bytes, body: bytes = b"") -> bytes:
    return b"POST /echo HTTP/1.1\r\n" + headers + b"\r\n" + body


_DEEP_LIST = b"[" * 100_000 + b"]" * 100_000
_DEEP_OBJECT = b'{"a":' * 50_000 + b"1" + b"}" * 50_000


@pytest.mark.parametrize(("request_bytes", "expected"), [
    (_post(b"Content-Length: \xb2\r\n"), "bad Content-Length"),
    (_post(b"Content-Length: -1\r\n"), "bad Content-Length"),
    (_post(b"Content-Length: 1e3\r\n"), "bad Content-Length"),
    (_post(b"Content-Length: " + b"9" * 5000 + b"\r\n"), "bad Content-Length"),
    (_post(b"Content-Length: 2\r\nContent-Length: 20\r\n", b"{}"),
     "more than one content-length header"),
    (_post(b"Transfer-Encoding: chunked\r\n", b"2\r\n{}\r\n0\r\n\r\n"), "chunked"),
    (_post(b"Content-Length : 2\r\n", b"{}"), "malformed header line"),
    (_post(b"X-A: 1\r\n folded\r\nContent-Length: 2\r\n", b"{}"), "malformed header line"),
    (_post(b"X-\xc3\xa9: 1\r\n"), "malformed header line"),
    (_post(b"X-A: a\x00b\r\n"), "control character"),
    (_post(b"X-Cardume-Request-Id: ../../x\r\n"), "X-Cardume-Request-Id"),
    (b"POST /\xc3\xa9cho HTTP/1.1\r\n\r\n", "malformed request target"),
    (b"POST /echo HTTP/1.1 extra\r\n\r\n", "malformed request line"),
    (b"POST /echo HTTP/7.0\r\n\r\n", "malformed request line"),
    (_post(b"Content-Length: %d\r\n" % len(_DEEP_LIST), _DEEP_LIST), "nested too deeply"),
    (_post(b"Content-Length: %d\r\n" % len(_DEEP_OBJECT), _DEEP_OBJECT), "nested too deeply"),
], ids=["unicode-digit", "negative", "float", "5000-digits", "two-lengths", "chunked",
        "space-before-colon", "folded", "non-ascii-name", "nul", "bad-request-id",
        "non-ascii-target", "extra-word", "http7", "deep-list", "deep-object"])
def test_malformed_requests_get_a_400_and_the_server_carries_on(
        pki: Pki, request_bytes: bytes, expected: str, caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> None:
        server = RpcServer(HANDLERS, node_server_ctx(pki))
        await server.start(HOST, 0)
        client = master_client(pki)
        try:
            await client.call(HOST, server.port, "echo", {}, 5)  # a connection held open
            status, body = await raw_request(pki, server.port, request_bytes)
            assert status == 400, body
            error = json.loads(body)["error"]
            assert error["code"] == "wrong_input" and expected in error["message"]
            assert "\n" not in error["message"] and len(error["message"]) < 200
            assert (await client.call(HOST, server.port, "echo", {"n": 1}, 5))["args"] == \
                {"n": 1}
            assert server.connections_accepted == 2
            assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []
        finally:
            await client.close()
            await server.close()
    run(main())
