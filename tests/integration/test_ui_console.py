"""The web console of a real local cluster, driven over HTTPS with http.client as a browser
would drive it (a cookie, forms, Origin): logging in, the dashboard's three nodes, creating
an instance from the form and finding it in `gnt-instance list`, stopping and starting it,
a job's log arriving as server-sent events, and the refusals (wrong password, no session,
missing or wrong CSRF token, another origin, a read user acting, an unknown instance)."""

from __future__ import annotations

import base64
import html
import http.client
import json
import os
import re
import signal
import ssl
from typing import Any
from urllib.parse import urlencode

import pytest
from integration_kit import Gnt, VCluster, wait_for
from test_rapi_daemon import address, credentials, master_paths

from cardume.master.client import Client


class Browser:
    """One user's cookie jar against the console; ``origin`` as a browser sends it."""

    def __init__(self, where: tuple[str, int]) -> None:
        self.host, self.port = where
        self.cookie = ""
        self.origin: str | None = f"https://{self.host}:{self.port}"

    def request(self, method: str, path: str, form: dict[str, str] | None = None,
                headers: dict[str, str] | None = None, timeout: float = 60
                ) -> tuple[int, dict[str, str], str]:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        conn = http.client.HTTPSConnection(self.host, self.port, context=ctx, timeout=timeout)
        sent = dict(headers or {})
        if self.cookie:
            sent["Cookie"] = self.cookie
        body = None
        if form is not None:
            body = urlencode(form)
            sent["Content-Type"] = "application/x-www-form-urlencoded"
            if self.origin is not None:
                sent.setdefault("Origin", self.origin)
        try:
            conn.request(method, path, body=body, headers=sent)
            reply = conn.getresponse()
            text = reply.read().decode()
            got = {k.lower(): v for k, v in reply.getheaders()}
        finally:
            conn.close()
        cookie = got.get("set-cookie", "")
        if cookie.startswith("cardume_ui="):
            value = cookie.split(";", 1)[0]
            self.cookie = "" if value == "cardume_ui=" else value
        return reply.status, got, text

    def get(self, path: str) -> tuple[int, str]:
        status, _, text = self.request("GET", path)
        return status, text

    def post(self, path: str, form: dict[str, str]) -> tuple[int, dict[str, str], str]:
        return self.request("POST", path, form)

    def csrf(self, path: str = "/ui/") -> str:
        status, text = self.get(path)
        assert status == 200, text
        found = re.search(r'name="csrf" value="([^"]+)"', text)
        assert found, text
        return found.group(1)

    def login(self, user: str, password: str) -> None:
        status, headers, text = self.post("/ui/login", {"user": user, "password": password,
                                                        "next": "/ui/"})
        assert status == 303, text
        assert headers["location"] == "/ui/"


@pytest.fixture(scope="module")
def admin(cluster: VCluster) -> Browser:
    user, _, password = credentials(cluster).partition(":")
    browser = Browser(address(cluster))
    browser.login(user, password)
    return browser


@pytest.fixture(scope="module")
def reader(cluster: VCluster) -> Browser:
    users = master_paths(cluster).rapi_users
    with open(users, "a", encoding="utf-8") as handle:
        handle.write("uireader {cleartext}readpw read\n")
    pid = cluster.pid(cluster.master(), "masterd")
    assert pid is not None
    os.kill(pid, signal.SIGHUP)
    browser = Browser(address(cluster))
    wait_for(lambda: browser.post("/ui/login", {"user": "uireader",
                                                "password": "readpw"})[0] == 303,
             30, "the console to accept the read user")
    return browser


@pytest.fixture(scope="module")
def running(gnt: Gnt) -> str:
    """A running instance made with the command line, for the refusals to leave alone."""
    gnt("gnt-instance", "add", "-t", "diskless", "--no-install", "-o", "dummy+default",
        "-B", "memory=64", "-n", "node3", "--no-name-check", "--no-ip-check", "web-b")
    return "web-b"


def job_of(headers: dict[str, str]) -> int:
    found = re.fullmatch(r"/ui/jobs/(\d+)", headers.get("location", ""))
    assert found, headers
    return int(found.group(1))


def wait_job(browser: Browser, job_id: int) -> str:
    def ended() -> str | None:
        text = browser.get(f"/ui/jobs/{job_id}")[1]
        status = re.search(r'id="job-status" class="status (\w+)"', text)
        assert status, text
        return status.group(1) if status.group(1) in ("success", "error", "canceled") \
            else None
    return str(wait_for(ended, 120, f"job {job_id} to end"))


CREATE = {"name": "web-a", "disk_template": "diskless", "os": "dummy+default",
          "memory": "128", "vcpus": "1", "pnode": "node2", "start": "1",
          "wait_for_sync": "1", "submitted": "1"}


def test_login_cookie_and_logout(cluster: VCluster) -> None:
    browser = Browser(address(cluster))
    status, headers, _ = browser.request("GET", "/ui/")
    assert status == 303 and headers["location"].startswith("/ui/login")
    user, _, password = credentials(cluster).partition(":")
    status, headers, _ = browser.post("/ui/login", {"user": user, "password": password})
    cookie = headers["set-cookie"]
    for part in ("HttpOnly", "Secure", "SameSite=Strict", "Path=/ui/"):
        assert part in cookie
    status, text = browser.get("/ui/")
    assert status == 200 and "Log out" in text
    status, _, _ = browser.post("/ui/logout", {"csrf": browser.csrf()})
    assert status == 303
    old = browser.cookie
    browser.cookie = old or "cardume_ui=gone"
    status, text = browser.get("/ui/")
    assert status in (303, 401)


def test_wrong_password_is_refused(cluster: VCluster) -> None:
    browser = Browser(address(cluster))
    user = credentials(cluster).partition(":")[0]
    status, headers, text = browser.post("/ui/login", {"user": user, "password": "nope"})
    assert status == 401 and "Wrong user name or password" in text
    assert "set-cookie" not in headers or "cardume_ui=;" in headers["set-cookie"]


def test_stale_session_is_a_clear_401(cluster: VCluster) -> None:
    browser = Browser(address(cluster))
    browser.cookie = "cardume_ui=made-up-or-expired"
    status, text = browser.get("/ui/instances")
    assert status == 401 and "expired" in text


def test_dashboard_shows_the_three_nodes(admin: Browser, cluster: VCluster) -> None:
    status, text = admin.get("/ui/")
    assert status == 200
    for node in ("node1", "node2", "node3"):
        assert f">{node}</a>" in text
    assert "master" in text and "<meter" in text
    assert "N+1: every node can take over" in text
    status, headers, _ = admin.post("/ui/cluster/verify", {"csrf": admin.csrf()})
    assert status == 303
    wait_job(admin, job_of(headers))
    assert "Last verify" in admin.get("/ui/")[1]
    status, headers, _ = admin.post("/ui/cluster/capacity", {"csrf": admin.csrf()})
    assert status == 303 and wait_job(admin, job_of(headers)) == "success"
    text = admin.get("/ui/")[1]
    found = re.search(r"<strong>(\d+)</strong> more standard instances fit", text)
    assert found and int(found.group(1)) > 0, text


def test_create_from_the_form_then_stop_and_start(admin: Browser, gnt: Gnt) -> None:
    bad = {**CREATE, "csrf": admin.csrf("/ui/create"), "disk_size": "lots",
           "disk_template": "file"}
    status, _, text = admin.post("/ui/create", bad)
    assert status == 400 and "invalid size 'lots' in -s" in html.unescape(text)
    assert 'value="web-a"' in text  # the form comes back with its values
    assert "web-a" not in gnt("gnt-instance", "list", "--no-headers", "-o", "name")[1]

    status, headers, text = admin.post("/ui/create", {**CREATE, "csrf": admin.csrf()})
    assert status == 303, text
    assert wait_job(admin, job_of(headers)) == "success"
    out = gnt("gnt-instance", "list", "--no-headers", "-o", "name,status")[1]
    assert "web-a" in out and "running" in out

    status, text = admin.get("/ui/instances?q=web-&sort=memory&order=desc")
    assert status == 200 and 'href="/ui/instances/web-a"' in text
    status, text = admin.get("/ui/instances/web-a/stop")
    assert status == 200 and "Yes, stop web-a" in text
    status, headers, _ = admin.post("/ui/instances/web-a/stop", {"csrf": admin.csrf()})
    assert wait_job(admin, job_of(headers)) == "success"
    assert "ADMIN_down" in gnt("gnt-instance", "list", "--no-headers", "-o", "status",
                               "web-a")[1]
    status, headers, _ = admin.post("/ui/instances/web-a/start", {"csrf": admin.csrf()})
    assert wait_job(admin, job_of(headers)) == "success"
    assert "running" in gnt("gnt-instance", "list", "--no-headers", "-o", "status",
                            "web-a")[1]
    status, text = admin.get("/ui/instances/web-a")
    assert status == 200 and "INSTANCE_STARTUP(web-a)" in text


def test_a_jobs_log_streams_as_server_sent_events(admin: Browser, cluster: VCluster,
                                                  gnt: Gnt) -> None:
    """The stream is open while the job still runs (a 2 s wait, then verify), and delivers
    verify's log lines as they are written, then the end."""
    client = Client(master_paths(cluster).master_socket)
    job_id = client.submit([{"OP_ID": "OP_TEST_DELAY", "duration": 2.0},
                            {"OP_ID": "OP_CLUSTER_VERIFY"}])
    page = admin.get(f"/ui/jobs/{job_id}")[1]  # without JavaScript: it reloads itself
    assert '<noscript><meta http-equiv="refresh" content="3"></noscript>' in page
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    conn = http.client.HTTPSConnection(admin.host, admin.port, context=ctx, timeout=60)
    try:
        conn.request("GET", f"/ui/jobs/{job_id}/events", headers={"Cookie": admin.cookie})
        reply = conn.getresponse()
        assert reply.status == 200
        assert reply.getheader("Content-Type", "").startswith("text/event-stream")
        assert reply.fp.readline() == b"retry: 3000\n"
        still = gnt("gnt-job", "list", "--no-headers", "-o", "status", str(job_id))[1]
        assert still.strip() in ("queued", "waiting", "running")  # streaming, not replayed
        events: list[tuple[str, dict[str, Any]]] = []
        event = ""
        while True:
            line = reply.fp.readline().decode()
            if not line:
                break
            if line.startswith("event: "):
                event = line[7:].strip()
            elif line.startswith("data: "):
                events.append((event, json.loads(line[6:])))
    finally:
        conn.close()
    logs = [data["message"] for kind, data in events if kind == "log"]
    assert any("Verifying" in message for message in logs), logs
    assert events[-1] == ("end", {"status": "success"})


def test_cancel_a_running_job(admin: Browser, reader: Browser, cluster: VCluster) -> None:
    client = Client(master_paths(cluster).master_socket)
    job_id = client.submit([{"OP_ID": "OP_TEST_DELAY", "duration": 60.0,
                             "interruptible": True}])
    text = admin.get(f"/ui/jobs/{job_id}")[1]
    assert f'action="/ui/jobs/{job_id}/cancel"' in text
    assert reader.post(f"/ui/jobs/{job_id}/cancel", {"csrf": reader.csrf()})[0] == 403
    status, headers, _ = admin.post(f"/ui/jobs/{job_id}/cancel", {"csrf": admin.csrf()})
    assert status == 303 and job_of(headers) == job_id
    assert wait_job(admin, job_id) == "canceled"


def test_refusals_change_nothing(admin: Browser, reader: Browser, gnt: Gnt,
                                 running: str) -> None:
    before = gnt("gnt-instance", "list", "--no-headers", "-o", "name,status")[1]
    assert f"{running} running" in " ".join(before.split())
    # no token, a wrong token, another site's origin
    assert admin.post("/ui/instances/web-b/stop", {})[0] == 403
    assert admin.post("/ui/instances/web-b/stop", {"csrf": "x" * 43})[0] == 403
    admin.origin = "https://evil.example"
    try:
        assert admin.post("/ui/instances/web-b/stop", {"csrf": admin.csrf()})[0] == 403
    finally:
        admin.origin = f"https://{admin.host}:{admin.port}"
    # a read user sees but does not act
    assert reader.get("/ui/instances")[0] == 200
    status, _, text = reader.post("/ui/instances/web-b/stop", {"csrf": reader.csrf()})
    assert status == 403 and "write access" in text
    assert reader.get("/ui/create")[0] == 403
    # an unknown instance
    status, text = admin.get("/ui/instances/no-such-vm")
    assert status == 404 and "no-such-vm" in text
    status, _, _ = admin.post("/ui/instances/no-such-vm/stop", {"csrf": admin.csrf()})
    assert status == 404
    assert gnt("gnt-instance", "list", "--no-headers", "-o", "name,status")[1] == before


def test_html_in_values_shows_as_text(admin: Browser, gnt: Gnt) -> None:
    """Tags cannot hold markup in cardume (the tag rules refuse it); what a user types can,
    and comes back as text: a filter, and a refused instance name in the form's error."""
    status, text = admin.get("/ui/instances?q=%3Cb%3Ex%3C%2Fb%3E")
    assert status == 200 and 'value="&lt;b&gt;x&lt;/b&gt;"' in text and "<b>x" not in text
    form = {**CREATE, "name": "<script>alert(1)</script>", "csrf": admin.csrf()}
    status, _, text = admin.post("/ui/create", form)
    assert status == 400 and "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert "<script>alert" not in text


def test_static_files_have_types_and_caching(admin: Browser) -> None:
    status, headers, text = admin.request("GET", "/ui/static/ui.css")
    assert status == 200 and headers["content-type"].startswith("text/css")
    assert "max-age" in headers["cache-control"] and headers["etag"]
    status, headers, _ = admin.request("GET", "/ui/static/ui.js",
                                       headers={"If-None-Match": headers["etag"]})
    assert status == 200 and headers["content-type"].startswith("text/javascript")
    etag = headers["etag"]
    status, _, _ = admin.request("GET", "/ui/static/ui.js", headers={"If-None-Match": etag})
    assert status == 304


def test_the_rest_api_is_unchanged_beside_it(cluster: VCluster) -> None:
    browser = Browser(address(cluster))
    user, _, password = credentials(cluster).partition(":")
    browser.login(user, password)
    # a form body is still refused by the JSON API, and a console cookie is no credential
    status, _, text = browser.request("PUT", "/2/redistribute-config", {"a": "b"})
    assert status == 401
    status, _, text = browser.request("PUT", "/2/redistribute-config", {"a": "b"},
                                      {"Authorization": "Basic " + base64.b64encode(
                                          f"{user}:{password}".encode()).decode()})
    assert status == 415 and "application/json" in text
