"""The web console's consoles against a fake master: who may open one (write users with a
session, from this origin, with the page's one-time token), the one-line refusals (unknown,
stopped, fake-hypervisor and VNC-less instances, too many consoles), the vendored files'
serving, and a console relayed end to end through the HTTP server to a stand-in node."""

from __future__ import annotations

import asyncio
import html
import re
import struct
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

from cardume import errors
from cardume.rapi import auth, http, websocket
from cardume.rapi.ui.app import STATIC_DIR, UiApp
from cardume.rapi.ui.console_relay import Ticket

HOST = "127.0.0.1:5080"
ORIGIN = f"https://{HOST}"
VNC = {"instance": "kvm1", "kind": "vnc", "host": "127.0.0.1", "port": 5901, "display": 1}


def row(name: str, **changes: Any) -> dict[str, Any]:
    base = {"name": name, "status": "running", "oper_state": True, "admin_state": "up",
            "pnode": "node1", "hypervisor": "kvm", "hv/serial_console": True,
            "console": None, "hvparams": {"serial_console": True}, "snodes": []}
    base.update(changes)
    return base


class FakeMaster:
    def __init__(self) -> None:
        self.instances = [row("kvm1", console=VNC,
                              hvparams={"serial_console": True,
                                        "vnc_bind_address": "127.0.0.1"}),
                          row("kvm2"),
                          row("down1", status="ADMIN_down", oper_state=False),
                          row("fake1", hypervisor="fake", **{"hv/serial_console": None})]

    async def call(self, method: str, *args: Any) -> Any:
        if method == "QueryConfigValues":
            return ["clu.example"]
        if method == "Query":
            resource, fields, names = args[0], args[1], args[2]
            if resource != "instance":
                return {"data": []}
            rows = [i for i in self.instances if not names or i["name"] in names]
            return {"data": [[i.get(f) for f in fields] for i in rows]}
        raise errors.WrongInput(f"fake master: no {method}")

    async def call_raw(self, method: str, *args: Any) -> bytes:
        raise NotImplementedError


@pytest.fixture
def app(tmp_path: Path) -> UiApp:
    users = tmp_path / "users"
    users.write_text("admin adminpw write\nreader readerpw read\n")
    return UiApp(FakeMaster(), auth.UsersFile(str(users)))  # type: ignore[arg-type]


WS_HEADERS = {"upgrade": "websocket", "connection": "Upgrade", "sec-websocket-version": "13",
              "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ=="}


def call(app: UiApp, method: str, target: str, form: dict[str, str] | None = None,
         cookie: str = "", origin: str | None = ORIGIN, ws: bool = False) -> http.Response:
    headers = {"host": HOST}
    if cookie:
        headers["cookie"] = cookie
    if ws:
        headers.update(WS_HEADERS)
    if origin is not None and (ws or form is not None):
        headers["origin"] = origin
    body = b""
    if form is not None:
        body = urlencode(form).encode()
        headers["content-type"] = "application/x-www-form-urlencoded"
    return asyncio.run(app(http.Request(method, target, (1, 1), headers, body)))


def login(app: UiApp, user: str = "admin", password: str = "adminpw") -> str:
    reply = call(app, "POST", "/ui/login", {"user": user, "password": password})
    assert reply.status == 303, reply.body
    return reply.headers["Set-Cookie"].split(";", 1)[0]


def socket_url(page: http.Response) -> str:
    assert page.status == 200, page.body
    found = re.search(rb'data-ws="([^"]+)"', page.body)
    assert found, page.body
    return found.group(1).decode().replace("&amp;", "&")


def test_a_write_user_gets_a_page_and_its_socket(app: UiApp) -> None:
    cookie = login(app)
    page = call(app, "GET", "/ui/instances/kvm2/console", cookie=cookie)
    assert b"console-serial.js" in page.body and b'type="module"' in page.body
    assert "script-src 'self';" in page.headers["Content-Security-Policy"]
    assert b"<script>" not in page.body  # no inline script
    reply = call(app, "GET", socket_url(page), cookie=cookie, ws=True)
    assert reply.status == 101 and reply.upgrade is not None
    assert reply.headers["Sec-WebSocket-Accept"] == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


def test_the_token_is_one_time_and_bound(app: UiApp) -> None:
    cookie = login(app)
    url = socket_url(call(app, "GET", "/ui/instances/kvm2/console", cookie=cookie))
    assert call(app, "GET", url, cookie=cookie, ws=True).status == 101
    again = call(app, "GET", url, cookie=cookie, ws=True)
    assert again.status == 403 and b"one-time token" in again.body
    assert call(app, "GET", "/ui/instances/kvm2/console/ws", cookie=cookie,
                ws=True).status == 403  # no token at all
    url = socket_url(call(app, "GET", "/ui/instances/kvm2/console", cookie=cookie))
    other = login(app)  # the same user, another session
    assert call(app, "GET", url, cookie=other, ws=True).status == 403
    assert call(app, "GET", url.replace("kvm2", "kvm1"), cookie=cookie, ws=True).status == 403
    assert call(app, "GET", url.replace("/console/", "/vnc/"), cookie=cookie,
                ws=True).status == 403


def test_refusals_no_session_read_user_wrong_origin(app: UiApp) -> None:
    cookie = login(app)
    url = socket_url(call(app, "GET", "/ui/instances/kvm2/console", cookie=cookie))
    assert call(app, "GET", url, ws=True).status == 401                      # no session
    assert call(app, "GET", url, cookie=cookie, ws=True,
                origin="https://evil.example").status == 403                 # another site
    assert call(app, "GET", url, cookie=cookie, ws=True, origin=None).status == 403
    reader = login(app, "reader", "readerpw")
    page = call(app, "GET", "/ui/instances/kvm2/console", cookie=reader)
    assert page.status == 403 and b"write access" in page.body
    assert call(app, "GET", url, cookie=reader, ws=True).status == 403
    assert call(app, "GET", url, cookie=cookie, ws=True).status == 101  # still unused
    plain = call(app, "GET", "/ui/instances/kvm2/console")
    assert plain.status == 303 and plain.headers["Location"].startswith("/ui/login")


@pytest.mark.parametrize("path, status, words", [
    ("/ui/instances/nosuch/console", 404, b"instance 'nosuch' not found"),
    ("/ui/instances/down1/console", 409, b"instance down1 is not running"),
    ("/ui/instances/fake1/console", 409, b"fake hypervisor, which has no console"),
    ("/ui/instances/kvm2/vnc", 409, b"instance kvm2 has no VNC display"),
])
def test_one_line_error_pages(app: UiApp, path: str, status: int, words: bytes) -> None:
    reply = call(app, "GET", path, cookie=login(app))
    assert reply.status == status and words in html.unescape(reply.body.decode()).encode()
    assert len(re.findall(rb'<p class="error">', reply.body)) == 1


def test_vnc_page_for_an_instance_with_a_display(app: UiApp) -> None:
    page = call(app, "GET", "/ui/instances/kvm1/vnc", cookie=login(app))
    assert b"console-vnc.js" in page.body and b"/vnc/ws?token=" in page.body
    assert "style-src 'self';" in page.headers["Content-Security-Policy"]  # strict there


def test_consoles_per_user_are_limited(app: UiApp) -> None:
    cookie = login(app)
    app.consoles.open["admin"] = app.consoles.per_user
    reply = call(app, "GET", "/ui/instances/kvm2/console", cookie=cookie)
    assert reply.status == 429 and b"consoles open already" in reply.body
    assert call(app, "GET", "/ui/instances/kvm2/console",
                cookie=login(app, "reader", "readerpw")).status == 403


def test_instance_page_links_to_its_consoles(app: UiApp) -> None:
    body = call(app, "GET", "/ui/instances/kvm1", cookie=login(app)).body
    assert b'href="/ui/instances/kvm1/console"' in body
    assert b'href="/ui/instances/kvm1/vnc"' in body
    body = call(app, "GET", "/ui/instances/kvm2", cookie=login(app)).body
    assert b"/kvm2/console" in body and b"/kvm2/vnc" not in body
    body = call(app, "GET", "/ui/instances/kvm1", cookie=login(app, "reader", "readerpw")).body
    assert b"/kvm1/console" not in body


def test_vendored_files_are_served_and_nothing_outside(app: UiApp) -> None:
    if not (STATIC_DIR / "vendor" / "xterm" / "lib" / "xterm.mjs").exists():
        pytest.fail("the vendored libraries are missing: run ./dev install "
                    "(packaging/vendor_js.py)")
    reply = call(app, "GET", "/ui/static/vendor/xterm/lib/xterm.mjs")
    assert reply.status == 200 and reply.content_type.startswith("text/javascript")
    assert call(app, "GET", "/ui/static/vendor/novnc/core/rfb.js").status == 200
    for bad in ("/ui/static/vendor/../app.py", "/ui/static/vendor/xterm/../../ui.css",
                "/ui/static/vendor/.hidden.js", "/ui/static/vendor/xterm/LICENSE"):
        assert call(app, "GET", bad).status == 404, bad


# --- end to end through the HTTP server, a stand-in node behind ------------------------------


def test_a_console_relays_both_ways_and_closes_when_the_node_ends(app: UiApp) -> None:
    async def scenario() -> None:
        async def node(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writer.write(b"login: ")
            await writer.drain()
            line = await reader.readline()
            writer.write(b"you typed " + line.upper())
            await writer.drain()
            writer.close()  # the console ends

        node_server = await asyncio.start_server(node, "127.0.0.1", 0)
        node_port = node_server.sockets[0].getsockname()[1]
        attached: list[Ticket] = []

        async def attach(ticket: Ticket) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
            attached.append(ticket)
            return await asyncio.open_connection("127.0.0.1", node_port)
        app.consoles.attach = attach  # type: ignore[method-assign]

        server = http.HttpServer(app)
        port = (await server.start("127.0.0.1", 0, None)).sockets[0].getsockname()[1]
        host = f"127.0.0.1:{port}"
        cookie = (await app(http.Request("POST", "/ui/login", (1, 1), {
            "host": host, "origin": f"https://{host}",
            "content-type": "application/x-www-form-urlencoded"},
            b"user=admin&password=adminpw"))).headers["Set-Cookie"].split(";")[0]
        page = await app(http.Request("GET", "/ui/instances/kvm2/console", (1, 1),
                                      {"host": host, "cookie": cookie}))
        url = socket_url(page)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            writer.write(f"GET {url} HTTP/1.1\r\nHost: {host}\r\nCookie: {cookie}\r\n"
                         f"Origin: https://{host}\r\nUpgrade: websocket\r\n"
                         "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
                         f"Sec-WebSocket-Key: {websocket.client_key()}\r\n\r\n".encode())
            head = await reader.readuntil(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 101 ")
            got = b""
            while b"login: " not in got:
                opcode, data = await _frame(reader)
                got += data
            assert app.consoles.open == {"admin": 1}
            writer.write(websocket.encode_frame(websocket.BINARY, b"root\n", mask=b"abcd"))
            while b"you typed ROOT\n" not in got:
                opcode, data = await _frame(reader)
                assert opcode == websocket.BINARY
                got += data
            opcode, data = await _frame(reader)  # the node ended: a clean close
            assert opcode == websocket.CLOSE
            assert websocket.parse_close(data) == (1000, "the console ended")
            assert [(t.instance, t.kind, t.node) for t in attached] == [("kvm2", "serial",
                                                                         "node1")]
        finally:
            writer.close()
            await server.close()
            node_server.close()
        assert app.consoles.open == {}
    asyncio.run(asyncio.wait_for(scenario(), 20))


async def _frame(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    b0, b1 = await reader.readexactly(2)
    n = b1 & 0x7F
    if n == 126:
        n = struct.unpack("!H", await reader.readexactly(2))[0]
    elif n == 127:
        n = struct.unpack("!Q", await reader.readexactly(8))[0]
    return b0 & 0x0F, await reader.readexactly(n)


def test_the_node_reaches_a_vnc_display_on_its_own_addresses() -> None:
    from cardume.node.console import vnc_target
    assert vnc_target({"vnc": "127.0.0.1:5901"}, "kvm1") == ("127.0.0.1", 5901)
    assert vnc_target({"vnc": "0.0.0.0:5902"}, "kvm1") == ("127.0.0.1", 5902)
    assert vnc_target({"vnc": ":::5903"}, "kvm1") == ("::1", 5903)
    with pytest.raises(errors.WrongState, match="has no VNC display"):
        vnc_target({"state": "running"}, "kvm1")
    with pytest.raises(errors.WrongState, match="is not running"):
        vnc_target(None, "kvm1")


def test_a_console_ends_when_its_session_does(app: UiApp,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    from cardume.rapi.ui import console_relay
    monkeypatch.setattr(console_relay, "KEEPALIVE", 0.05)

    async def scenario() -> None:
        async def node(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.read()  # a console that stays open, quiet

        node_server = await asyncio.start_server(node, "127.0.0.1", 0)
        node_port = node_server.sockets[0].getsockname()[1]

        async def attach(ticket: Ticket) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
            return await asyncio.open_connection("127.0.0.1", node_port)
        app.consoles.attach = attach  # type: ignore[method-assign]
        session = app.sessions.create("admin")
        token = app.consoles.issue(session, "kvm2", "serial", "node1")
        ticket = app.consoles.redeem(token, session, "kvm2", "serial")
        server_side: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

        async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            ws = websocket.WebSocket(reader, writer)
            server_side.set_result(asyncio.current_task())
            await app.consoles.run(ticket, ws, app.sessions, lambda user: True)

        browser_server = await asyncio.start_server(accept, "127.0.0.1", 0)
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", browser_server.sockets[0].getsockname()[1])
        try:
            await server_side
            assert app.consoles.open == {"admin": 1}
            app.sessions.drop(session.id)  # logged out
            while True:
                opcode, data = await _frame(reader)
                if opcode == websocket.CLOSE:
                    break
            assert websocket.parse_close(data) == (
                websocket.POLICY, "your session ended or lost write access")
        finally:
            writer.close()
            browser_server.close()
            node_server.close()
    asyncio.run(asyncio.wait_for(scenario(), 10))
    assert app.consoles.open == {}
