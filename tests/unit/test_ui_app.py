"""The console's request handling against a fake master: logging in, the checks every POST
passes (origin, CSRF token, write access), what an accepted action submits, the instance
list's sorting and pages, the create form's refusals, and a streamed reply end to end."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

from cardume import errors
from cardume.rapi import auth, http
from cardume.rapi.ui import session
from cardume.rapi.ui.app import UiApp, WebApp

HOST = "127.0.0.1:5080"
ORIGIN = f"https://{HOST}"


class FakeMaster:
    def __init__(self, instances: int = 3) -> None:
        self.calls: list[tuple[str, tuple[Any, ...]]] = []
        self.instances = [{"name": f"vm{i:04d}", "status": "running" if i % 2 else
                           "ADMIN_down", "pnode": "node1", "snodes": [],
                           "disk_template": "diskless", "be/maxmem": 128 + i, "be/vcpus": 1,
                           "os": "dummy"} for i in range(instances)]

    async def call(self, method: str, *args: Any) -> Any:
        self.calls.append((method, args))
        if method == "QueryConfigValues":
            return ["clu.example"]
        if method == "SubmitJob":
            return 7
        if method == "Query":
            resource, fields, names = args[0], args[1], args[2]
            if resource == "instance":
                rows = [i for i in self.instances if not names or i["name"] in names]
                return {"data": [[i.get(f) for f in fields] for i in rows]}
            if resource == "job":
                return {"data": []}
            return {"data": []}
        raise errors.WrongInput(f"fake master: no {method}")

    async def call_raw(self, method: str, *args: Any) -> bytes:
        raise NotImplementedError

    def submitted(self) -> list[Any]:
        return [args[0] for method, args in self.calls if method == "SubmitJob"]


@pytest.fixture
def app(tmp_path: Path) -> UiApp:
    users = tmp_path / "users"
    users.write_text("admin adminpw write\nreader readerpw read\n")
    return UiApp(FakeMaster(250), auth.UsersFile(str(users)))


def master(app: UiApp) -> FakeMaster:
    assert isinstance(app.master, FakeMaster)
    return app.master


def call(app: UiApp, method: str, target: str, form: dict[str, str] | None = None,
         cookie: str = "", origin: str | None = ORIGIN) -> http.Response:
    headers = {"host": HOST}
    if cookie:
        headers["cookie"] = cookie
    body = b""
    if form is not None:
        body = urlencode(form).encode()
        headers["content-type"] = "application/x-www-form-urlencoded"
        if origin is not None:
            headers["origin"] = origin
    request = http.Request(method, target, (1, 1), headers, body)
    return asyncio.run(app(request))


def login(app: UiApp, user: str = "admin", password: str = "adminpw") -> tuple[str, str]:
    """The session cookie and its CSRF token."""
    reply = call(app, "POST", "/ui/login", {"user": user, "password": password})
    assert reply.status == 303, reply.body
    cookie = reply.headers["Set-Cookie"].split(";", 1)[0]
    page = call(app, "GET", "/ui/instances", cookie=cookie)
    found = re.search(rb'name="csrf" value="([^"]+)"', page.body)
    assert found
    return cookie, found.group(1).decode()


def test_pages_need_a_login(app: UiApp) -> None:
    reply = call(app, "GET", "/ui/instances")
    assert reply.status == 303 and reply.headers["Location"] == "/ui/login?next=/ui/instances"
    assert call(app, "GET", "/ui/login").status == 200
    assert call(app, "POST", "/ui/instances/vm0001/stop", {"csrf": "x"}).status == 401
    assert master(app).submitted() == []


def test_wrong_password_and_no_password_logged(app: UiApp,
                                               caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    reply = call(app, "POST", "/ui/login", {"user": "admin", "password": "s3cret-guess"})
    assert reply.status == 401 and b"Wrong user name or password" in reply.body
    assert "Set-Cookie" not in reply.headers
    assert call(app, "POST", "/ui/login", {"user": "nobody", "password": "x"}).status == 401
    call(app, "POST", "/ui/login", {"user": "admin", "password": "adminpw"})
    assert "s3cret" not in caplog.text and "adminpw" not in caplog.text


def test_login_from_another_site_is_refused(app: UiApp) -> None:
    reply = call(app, "POST", "/ui/login", {"user": "admin", "password": "adminpw"},
                 origin="https://evil.example")
    assert reply.status == 403 and "Set-Cookie" not in reply.headers


def test_an_action_passes_every_check_then_submits(app: UiApp) -> None:
    cookie, csrf = login(app)
    target = "/ui/instances/vm0001/stop"
    assert call(app, "POST", target, {}, cookie).status == 403
    assert call(app, "POST", target, {"csrf": csrf + "x"}, cookie).status == 403
    assert call(app, "POST", target, {"csrf": csrf}, cookie, origin=None).status == 403
    assert call(app, "POST", target, {"csrf": csrf}, cookie,
                origin="https://evil.example").status == 403
    assert master(app).submitted() == []
    reply = call(app, "POST", target, {"csrf": csrf}, cookie)
    assert reply.status == 303 and reply.headers["Location"] == "/ui/jobs/7"
    [ops] = master(app).submitted()
    assert ops[0]["OP_ID"] == "OP_INSTANCE_SHUTDOWN" and ops[0]["instance_name"] == "vm0001"
    assert ops[0]["reason"][0][1] == "web console, user admin"


def test_a_read_user_sees_but_does_not_act(app: UiApp) -> None:
    cookie, csrf = login(app, "reader", "readerpw")
    assert call(app, "GET", "/ui/instances/vm0001", cookie=cookie).status == 200
    reply = call(app, "POST", "/ui/instances/vm0001/stop", {"csrf": csrf}, cookie)
    assert reply.status == 403 and b"write access" in reply.body
    assert call(app, "GET", "/ui/instances/vm0001/stop", cookie=cookie).status == 403
    assert call(app, "GET", "/ui/create", cookie=cookie).status == 403
    assert master(app).submitted() == []


def test_unknown_things_are_404_pages(app: UiApp) -> None:
    cookie, csrf = login(app)
    reply = call(app, "GET", "/ui/instances/no-such", cookie=cookie)
    assert reply.status == 404 and b"no-such" in reply.body
    assert reply.content_type.startswith("text/html")
    reply = call(app, "POST", "/ui/instances/no-such/stop", {"csrf": csrf}, cookie)
    assert reply.status == 404
    assert call(app, "GET", "/ui/instances/vm0001/explode", cookie=cookie).status == 404
    assert call(app, "GET", "/ui/nowhere", cookie=cookie).status == 404
    assert call(app, "GET", "/ui/jobs/abc", cookie=cookie).status == 404
    reply = call(app, "DELETE", "/ui/jobs/1", cookie=cookie)
    assert reply.status == 405 and reply.headers["Allow"] == "GET"
    assert master(app).submitted() == []


def test_expired_and_logged_out_sessions(app: UiApp) -> None:
    cookie, csrf = login(app)
    sid = cookie.partition("=")[2]
    app.sessions.drop(sid)
    reply = call(app, "GET", "/ui/instances", cookie=cookie)
    assert reply.status == 401 and b"expired" in reply.body
    cookie, csrf = login(app)
    reply = call(app, "POST", "/ui/logout", {"csrf": csrf}, cookie)
    assert reply.status == 303 and "Max-Age=0" in reply.headers["Set-Cookie"]
    assert call(app, "GET", "/ui/instances", cookie=cookie).status == 401


def test_removed_user_loses_the_session(app: UiApp, tmp_path: Path) -> None:
    cookie, _ = login(app, "reader", "readerpw")
    (tmp_path / "users").write_text("admin adminpw write\n# reader is gone\n")
    assert call(app, "GET", "/ui/instances", cookie=cookie).status == 401


def test_pages_carry_security_headers(app: UiApp) -> None:
    cookie, _ = login(app)
    reply = call(app, "GET", "/ui/instances", cookie=cookie)
    assert "script-src 'self'" in reply.headers["Content-Security-Policy"]
    assert reply.headers["X-Frame-Options"] == "DENY"
    assert reply.headers["Cache-Control"] == "no-store"


def test_instance_list_sorts_and_pages_on_the_server(app: UiApp) -> None:
    cookie, _ = login(app)
    reply = call(app, "GET", "/ui/instances?sort=memory&order=desc&per=100&page=3",
                 cookie=cookie)
    names = re.findall(rb'href="/ui/instances/(vm\d+)"', reply.body)
    assert len(names) == 50 and names[0] == b"vm0049" and names[-1] == b"vm0000"
    assert b"250 instance(s); page 3 of 3" in reply.body
    reply = call(app, "GET", "/ui/instances?q=vm00&status=running", cookie=cookie)
    query = [args for method, args in master(app).calls if method == "Query"][-1]
    assert query[3] == ["&", ["=~", "name", "vm00"], ["==", "status", "running"]]
    assert call(app, "GET", "/ui/instances?sort=secret", cookie=cookie).status == 400
    assert call(app, "GET", "/ui/instances?status=<x>", cookie=cookie).status == 400


def test_create_form_refuses_what_gnt_instance_add_refuses(app: UiApp) -> None:
    cookie, csrf = login(app)
    app.master.call = _with_form_data(app.master.call)  # type: ignore[method-assign]
    form = {"csrf": csrf, "name": "new1", "disk_template": "file", "disk_size": "12Q",
            "os": "dummy", "start": "1"}
    reply = call(app, "POST", "/ui/create", form, cookie)
    assert reply.status == 400
    assert b"invalid size &#x27;12Q&#x27; in -s" in reply.body
    assert b'value="new1"' in reply.body
    reply = call(app, "POST", "/ui/create", {**form, "disk_size": "1G", "ip_check": "1"},
                 cookie)  # the name check off, the address check on: as the CLI, refused
    assert reply.status == 400 and b"needs --no-ip-check" in reply.body
    assert master(app).submitted() == []
    reply = call(app, "POST", "/ui/create", {**form, "disk_size": "1G", "name_check": "1",
                                             "ip_check": "1"}, cookie)
    assert reply.status == 303
    [ops] = master(app).submitted()
    assert ops[0]["OP_ID"] == "OP_INSTANCE_CREATE" and ops[0]["disks"] == [{"size": 1024}]


def _with_form_data(inner: Any) -> Any:
    async def wrapped(method: str, *args: Any) -> Any:
        if method == "QueryClusterInfo":
            return {"enabled_disk_templates": ["file", "diskless"],
                    "default_disk_template": "file"}
        if method == "QueryOs":
            return [{"name": "dummy", "valid": True, "variants": []}]
        return await inner(method, *args)
    return wrapped


def test_the_rest_api_still_refuses_form_bodies(tmp_path: Path) -> None:
    users = tmp_path / "users"
    users.write_text("admin adminpw write\n")
    file = auth.UsersFile(str(users))
    web = WebApp(http.RapiApp(FakeMaster(), file), UiApp(FakeMaster(), file))
    headers = {"host": HOST, "authorization": "Basic YWRtaW46YWRtaW5wdw==",
               "content-type": "application/x-www-form-urlencoded"}
    reply = asyncio.run(web(http.Request("PUT", "/2/redistribute-config", (1, 1), headers,
                                         b"a=b")))
    assert reply.status == 415
    reply = asyncio.run(web(http.Request("GET", "/ui/static/ui.css", (1, 1), {"host": HOST})))
    assert reply.status == 200 and reply.content_type.startswith("text/css")
    reply = asyncio.run(web(http.Request("GET", "/ui/static/../daemon.py", (1, 1), {})))
    assert reply.status == 404


def test_a_streamed_reply_goes_out_as_it_is_made() -> None:
    gate = asyncio.Event()

    async def chunks() -> AsyncIterator[bytes]:
        yield b"data: one\n\n"
        await gate.wait()
        yield b"data: two\n\n"

    async def app(request: http.Request) -> http.Response:
        return http.Response(200, b"", content_type="text/event-stream", stream=chunks())

    async def scenario() -> None:
        server = http.HttpServer(app)
        listening = await server.start("127.0.0.1", 0, None)
        port = listening.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            writer.write(b"GET /x HTTP/1.1\r\nHost: t\r\n\r\n")
            head = (await reader.readuntil(b"\r\n\r\n")).decode()
            assert "Content-Length" not in head and "Connection: close" in head
            assert await reader.readuntil(b"\n\n") == b"data: one\n\n"  # before the rest
            gate.set()
            assert await reader.read() == b"data: two\n\n"  # then the connection closes
        finally:
            writer.close()
            await server.close()

    asyncio.run(asyncio.wait_for(scenario(), 10))


def test_session_cookie_name_is_the_apps() -> None:
    assert session.COOKIE == "cardume_ui"


def test_too_many_wrong_passwords_lock_the_name_for_a_while(app: UiApp) -> None:
    for _ in range(5):
        assert call(app, "POST", "/ui/login", {"user": "admin", "password": "x"}).status == 401
    reply = call(app, "POST", "/ui/login", {"user": "admin", "password": "adminpw"})
    assert reply.status == 429 and int(reply.headers["Retry-After"]) > 0
    assert "Set-Cookie" not in reply.headers
    assert call(app, "POST", "/ui/login", {"user": "reader", "password": "readerpw"}
                ).status == 303


def test_confirmation_offers_the_tables_options(app: UiApp) -> None:
    cookie, csrf = login(app)
    page = call(app, "GET", "/ui/instances/vm0001/reboot", cookie=cookie)
    assert page.status == 200
    for choice in (b'<option value="soft">', b'<option value="hard">', b'name="csrf"'):
        assert choice in page.body
    target = "/ui/instances/vm0001/reboot"
    assert call(app, "POST", target, {"csrf": csrf, "reboot_type": "gentle"},
                cookie).status == 400
    assert master(app).submitted() == []
    reply = call(app, "POST", target, {"csrf": csrf, "reboot_type": "soft"}, cookie)
    assert reply.status == 303
    [ops] = master(app).submitted()
    assert ops[0]["OP_ID"] == "OP_INSTANCE_REBOOT" and ops[0]["reboot_type"] == "soft"


def test_login_goes_back_only_to_console_pages(app: UiApp) -> None:
    for target, expected in (("/ui/jobs", "/ui/jobs"), ("//evil.example/ui/", "/ui/"),
                             ("https://evil.example/", "/ui/"), ("/ui/\\\\evil", "/ui/"),
                             ("/2/info", "/ui/")):
        reply = call(app, "POST", "/ui/login", {"user": "admin", "password": "adminpw",
                                                "next": target})
        assert reply.status == 303 and reply.headers["Location"] == expected, target


def test_a_mirrored_instance_shows_its_drbd_state(app: UiApp) -> None:
    inner = app.master.call
    app.master.instances[1].update(  # type: ignore[attr-defined]
        {"disk_template": "drbd", "disk.sizes": [1024], "disk.names": [None],
         "snodes": ["node2"]})

    async def with_drbd(method: str, *args: Any) -> Any:
        if method == "QueryDrbd":
            return {"instances": [{"name": "vm0001", "disks": [{"index": 0, "sides": [
                {"node": "node1", "status": {"cstate": "SyncSource", "role": "Primary",
                                             "disk": "UpToDate", "sync_percent": 42.5}},
                {"node": "node2", "status": {"cstate": "SyncTarget", "role": "Secondary",
                                             "disk": "Inconsistent", "sync_percent": 42.5}},
            ]}]}]}
        return await inner(method, *args)

    app.master.call = with_drbd  # type: ignore[method-assign]
    cookie, _ = login(app)
    page = call(app, "GET", "/ui/instances/vm0001", cookie=cookie)
    assert page.status == 200
    assert b"node1: SyncSource Primary/UpToDate, syncing 42.5%" in page.body
    assert b'data-refresh="1"' in page.body
