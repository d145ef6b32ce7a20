"""The REST daemon's HTTP side in one process (plain TCP on 127.0.0.1, no TLS): the request
parser's limits, keep-alive, hostile clients, and how handler outcomes become replies."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from cardume import errors
from cardume.rapi import auth, http, routes
from cardume.rapi.base import Call, RapiError, Route

AUTH = "Basic " + base64.b64encode(b"admin:pw").decode()


class NoMaster:
    async def call(self, method: str, *args: Any) -> Any:
        raise errors.MasterUnreachable("no master in this test")


@asynccontextmanager
async def serving(tmp_path: Path, limits: http.Limits | None = None,
                  anonymous: bool = False) -> AsyncIterator[int]:
    users_file = tmp_path / "users"
    users_file.write_text("admin pw write\nreader pw read\n")
    app = http.RapiApp(NoMaster(), auth.UsersFile(str(users_file)), anonymous)
    server = http.HttpServer(app, limits or http.Limits())
    listening = await server.start("127.0.0.1", 0, None)
    try:
        yield listening.sockets[0].getsockname()[1]
    finally:
        await server.close()


async def exchange(port: int, raw: bytes) -> tuple[int, dict[str, str], Any]:
    """Send raw bytes on a new connection; the first reply's status, headers, JSON body."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(raw)
        await writer.drain()
        return await read_reply(reader)
    finally:
        writer.close()


async def read_reply(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], Any]:
    head = (await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)).decode("latin-1")
    status_line, *lines = head.strip().split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines)}
    body = await reader.readexactly(int(headers["content-length"]))
    return int(status_line.split()[1]), headers, json.loads(body)


def request(method: str, path: str, body: bytes | None = None, *, auth_header: str = AUTH,
            ctype: str = "application/json", extra: str = "") -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: test", f"Authorization: {auth_header}"]
    if body is not None:
        lines += [f"Content-Type: {ctype}", f"Content-Length: {len(body)}"]
    return ("\r\n".join(lines) + "\r\n" + extra + "\r\n").encode() + (body or b"")


def run(coro: Awaitable[Any]) -> Any:
    return asyncio.run(asyncio.wait_for(coro, 30))


def use_handler(monkeypatch: pytest.MonkeyPatch, handler: Callable[[Call], Awaitable[Any]],
                access: auth.Access = "read") -> None:
    """Every path goes to ``handler`` (the real table's resources belong to their tests)."""
    monkeypatch.setattr(routes, "lookup",
                        lambda method, path: Route(handler, access, {"path": path}))


# --- the parser on its own -----------------------------------------------------------------


@pytest.mark.parametrize("head,status", [
    (b"GET /version", 400),
    (b"GET  /version HTTP/1.1", 400),
    (b"G@T /version HTTP/1.1", 400),
    (b"GET /version HTTP/2.0", 505),
    (b"GET /version HTTPS/1.1", 400),
    (b"GET /version HTTP/1.1\r\n folded: header", 400),
    (b"GET /version HTTP/1.1\r\nno colon here", 400),
    (b"GET /version HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2", 400),
])
def test_parse_head_refuses_malformed_requests(head: bytes, status: int) -> None:
    with pytest.raises(http.HttpError) as caught:
        http.parse_head(head, http.Limits())
    assert caught.value.status == status


def test_parse_head_limits_the_number_of_headers() -> None:
    limits = http.Limits(max_headers=5)
    head = b"GET / HTTP/1.1" + b"".join(b"\r\nX-%d: y" % i for i in range(6))
    with pytest.raises(http.HttpError) as caught:
        http.parse_head(head, limits)
    assert caught.value.status == 431
    http.parse_head(b"GET / HTTP/1.1" + b"".join(b"\r\nX-%d: y" % i for i in range(5)), limits)


@pytest.mark.parametrize("headers,status", [
    ({"content-length": "2000000"}, 413),
    ({"content-length": "-1"}, 400),
    ({"content-length": "1e3"}, 400),
    ({"transfer-encoding": "chunked"}, 411),
])
def test_body_length_refusals(headers: dict[str, str], status: int) -> None:
    req = http.Request("POST", "/", (1, 1), headers)
    with pytest.raises(http.HttpError) as caught:
        http.body_length(req, http.Limits(max_body=1024 * 1024))
    assert caught.value.status == status


def test_keep_alive_follows_the_version_and_connection_header() -> None:
    assert http.Request("GET", "/", (1, 1), {}).keep_alive
    assert not http.Request("GET", "/", (1, 1), {"connection": "close"}).keep_alive
    assert not http.Request("GET", "/", (1, 0), {}).keep_alive
    assert http.Request("GET", "/", (1, 0), {"connection": "Keep-Alive"}).keep_alive


# --- a served connection ---------------------------------------------------------------------


def test_keep_alive_serves_several_requests_on_one_connection(tmp_path: Path) -> None:
    async def scenario() -> list[tuple[int, Any]]:
        async with serving(tmp_path) as port:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            replies = []
            for _ in range(3):
                writer.write(request("GET", "/version"))
                status, _headers, body = await read_reply(reader)
                replies.append((status, body))
            writer.close()
            return replies
    assert run(scenario()) == [(200, 2)] * 3


def test_unknown_path_wrong_method_and_no_credentials(tmp_path: Path) -> None:
    async def scenario() -> list[tuple[int, dict[str, str], Any]]:
        async with serving(tmp_path) as port:
            return [await exchange(port, request("GET", "/no/such/thing")),
                    await exchange(port, request("DELETE", "/version")),
                    await exchange(port, request("GET", "/version", auth_header="Basic x"))]
    (s404, _, b404), (s405, h405, b405), (s401, h401, b401) = run(scenario())
    assert (s404, b404["code"]) == (404, 404) and "/no/such/thing" in b404["message"]
    assert s405 == 405 and h405["allow"] == "GET" and "DELETE" in b405["message"]
    assert s401 == 401 and h401["www-authenticate"] == 'Basic realm="Ganeti Remote API"'
    assert set(b401) == {"code", "message", "explain"}


def test_oversized_body_is_refused_from_its_announced_length(tmp_path: Path) -> None:
    async def scenario() -> tuple[int, dict[str, str], Any]:
        async with serving(tmp_path) as port:
            # a gigabyte announced, none of it sent: the reply must not wait for it
            head = (b"PUT /version HTTP/1.1\r\nContent-Type: application/json\r\n"
                    b"Content-Length: 1000000000\r\nAuthorization: " + AUTH.encode()
                    + b"\r\n\r\n")
            return await exchange(port, head)
    status, headers, body = run(scenario())
    assert status == 413 and "1000000000" in body["message"]
    assert headers["connection"] == "close"


def test_expect_100_continue_gets_413_before_the_body(tmp_path: Path) -> None:
    async def scenario() -> tuple[int, dict[str, str], Any]:
        async with serving(tmp_path, http.Limits(max_body=100)) as port:
            return await exchange(port, request("PUT", "/version", b"x" * 101,
                                                extra="Expect: 100-continue\r\n")[:-101])
    assert run(scenario())[0] == 413


def test_huge_headers_are_refused(tmp_path: Path) -> None:
    async def scenario() -> list[int]:
        async with serving(tmp_path, http.Limits(max_head=1024)) as port:
            long_line = b"GET /" + b"a" * 2000 + b" HTTP/1.1\r\n\r\n"
            big_header = b"GET / HTTP/1.1\r\nX-Big: " + b"b" * 2000 + b"\r\n\r\n"
            return [(await exchange(port, long_line))[0],
                    (await exchange(port, big_header))[0]]
    assert run(scenario()) == [414, 431]


def test_half_sent_request_times_out_and_does_not_block_others(tmp_path: Path) -> None:
    async def scenario() -> tuple[int, int, bool]:
        async with serving(tmp_path, http.Limits(head_timeout=1.0)) as port:
            slow_reader, slow = await asyncio.open_connection("127.0.0.1", port)
            slow.write(b"GET /version HTTP/1.1\r\nHost: te")  # ... and nothing more
            await slow.drain()
            fast, _, _ = await exchange(port, request("GET", "/version"))
            slow_done = slow_reader.at_eof()  # the fast reply came while slow still waits
            timed_out, _, _ = await read_reply(slow_reader)
            slow.close()
            return fast, timed_out, slow_done
    fast, timed_out, slow_done = run(scenario())
    assert fast == 200 and not slow_done
    assert timed_out == 408


def test_connections_beyond_the_cap_get_503(tmp_path: Path) -> None:
    async def scenario() -> tuple[int, int]:
        async with serving(tmp_path, http.Limits(max_connections=1)) as port:
            reader, held = await asyncio.open_connection("127.0.0.1", port)
            held.write(request("GET", "/version"))  # served, and kept alive
            first, _, _ = await read_reply(reader)
            second, _, _ = await exchange(port, request("GET", "/version"))
            held.close()
            return first, second
    assert run(scenario()) == (200, 503)


def test_json_bodies_content_type_and_errors(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    async def echo(call: Call) -> Any:
        return {"body": call.body, "user": call.user, "args": call.args}
    use_handler(monkeypatch, echo)

    async def scenario() -> list[tuple[int, dict[str, str], Any]]:
        async with serving(tmp_path) as port:
            return [
                await exchange(port, request("GET", "/2/jobs/1/wait?x=1", b'{"a": [1]}')),
                await exchange(port, request("PUT", "/x", b"{nope")),
                await exchange(port, request("PUT", "/x", b"a=1",
                                             ctype="application/x-www-form-urlencoded")),
                await exchange(port, request("PUT", "/x", b"NaN")),
                await exchange(port, request("PUT", "/x", b"[" * 100000 + b"]" * 100000)),
                await exchange(port, request("PUT", "/x", b"\xff\xfe")),
            ]
    ok, bad_json, form, nan, deep, binary = run(scenario())
    assert ok[0] == 200 and ok[1]["content-type"] == "application/json"
    assert ok[2] == {"body": {"a": [1]}, "user": "admin", "args": {"x": ["1"]}}
    assert bad_json[0] == 400 and "not valid JSON" in bad_json[2]["message"]
    assert form[0] == 415 and "application/json" in form[2]["message"]
    assert nan[0] == 400 and "NaN" in nan[2]["message"]
    assert deep[0] == 400
    assert binary[0] == 400 and "UTF-8" in binary[2]["message"]


@pytest.mark.parametrize("raised,status,text", [
    (errors.UnknownEntity("instance 'vm9' does not exist"), 404, "vm9"),
    (errors.WrongInput("bad value 'x' for y"), 400, "bad value"),
    (errors.WrongState("instance is running"), 409, "running"),
    (RapiError(501, "frobnicate is not supported yet"), 501, "frobnicate"),
    (KeyError("secret-internal-detail"), 500, "KeyError"),
])
def test_handler_errors_become_ganeti_error_replies(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, raised: Exception, status: int,
        text: str) -> None:
    async def failing(call: Call) -> Any:
        raise raised
    use_handler(monkeypatch, failing)

    async def scenario() -> list[tuple[int, dict[str, str], Any]]:
        async with serving(tmp_path) as port:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(request("GET", "/anything"))
            first = await read_reply(reader)
            writer.write(request("GET", "/anything"))  # and the connection goes on
            second = await read_reply(reader)
            writer.close()
            return [first, second]
    (got, _, body), (again, _, _) = run(scenario())
    assert got == again == status
    assert body["code"] == status and text in body["message"]
    assert "Traceback" not in body["message"] and "secret-internal-detail" not in body["message"]


def test_anonymous_reads_when_allowed(tmp_path: Path) -> None:
    anonymous = b"GET /version HTTP/1.1\r\nHost: t\r\n\r\n"

    async def scenario() -> tuple[int, int]:
        async with serving(tmp_path) as closed_port:
            refused = (await exchange(closed_port, anonymous))[0]
        async with serving(tmp_path, anonymous=True) as open_port:
            allowed = (await exchange(open_port, anonymous))[0]
        return refused, allowed
    assert run(scenario()) == (401, 200)


def test_request_target_must_be_a_path(tmp_path: Path) -> None:
    async def scenario() -> tuple[int, dict[str, str], Any]:
        async with serving(tmp_path) as port:
            return await exchange(port, request("GET", "*"))
    status, _, body = run(scenario())
    assert status == 400 and "'*'" in body["message"]
