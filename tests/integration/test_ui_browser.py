"""The web console in a real headless Chromium (Debian's chromium and chromium-driver,
driven over the W3C WebDriver protocol with the standard library): log in by typing, see
the three nodes, create an instance from the form and find it in `gnt-instance list`, watch
its job's log arrive, stop and start it through the confirmation pages. Screenshots of each
step are saved in the test's temporary directory (printed at the end)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from integration_kit import Gnt, VCluster, install_dummy_os, wait_for
from test_rapi_daemon import address, credentials, master_paths

from cardume.master.client import Client

CHROMIUM = "/usr/bin/chromium"
DRIVER = "/usr/bin/chromedriver"
ELEMENT = "element-6066-11e4-a52e-4f735466cecf"  # the W3C protocol's element key

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not (os.path.exists(CHROMIUM) and os.path.exists(DRIVER)),
                       reason="chromium and chromium-driver are not installed (./dev install)"),
]


class Browser:
    """One WebDriver session of a chromedriver on a loopback port."""

    def __init__(self, port: int, shots: Path) -> None:
        self.base = f"http://127.0.0.1:{port}"
        self.shots = shots
        self.count = 0
        caps = {"capabilities": {"alwaysMatch": {
            "browserName": "chrome", "acceptInsecureCerts": True,
            "goog:chromeOptions": {"binary": CHROMIUM, "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1280,1000"]}}}}
        self.session = self._send("POST", "/session", caps)["sessionId"]
        # finding an element waits for it (up to 20 s): a click's page may still be loading
        self.cmd("POST", "/timeouts", {"implicit": 20000, "pageLoad": 60000})

    def _send(self, method: str, path: str, body: Any = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.base + path, data=data, method=method,
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=120) as reply:
                return json.loads(reply.read())["value"]
        except urllib.error.HTTPError as err:
            raise AssertionError(f"webdriver {method} {path}: {err.read()[:500]!r}") from None

    def cmd(self, method: str, path: str, body: Any = None) -> Any:
        return self._send(method, f"/session/{self.session}{path}", body)

    def go(self, url: str) -> None:
        self.cmd("POST", "/url", {"url": url})

    def find(self, css: str) -> str:
        found = self.cmd("POST", "/element", {"using": "css selector", "value": css})
        if not isinstance(found, dict) or ELEMENT not in found:
            source = self.cmd("GET", "/source")
            raise AssertionError(f"no element {css} on {self.url()}: {found!r}\n{source[:800]}")
        return str(found[ELEMENT])

    def finds(self, css: str) -> list[str]:
        return [e[ELEMENT] for e in self.cmd("POST", "/elements",
                                             {"using": "css selector", "value": css})]

    def type(self, css: str, text: str) -> None:
        element = self.find(css)
        self.cmd("POST", f"/element/{element}/clear", {})
        self.cmd("POST", f"/element/{element}/value", {"text": text})

    def click(self, css: str) -> None:
        self.cmd("POST", f"/element/{self.find(css)}/click", {})

    def text(self, css: str) -> str:
        return str(self.cmd("GET", f"/element/{self.find(css)}/text"))

    def js(self, script: str, *args: Any) -> Any:
        return self.cmd("POST", "/execute/sync", {"script": script, "args": list(args)})

    def select(self, name: str, value: str) -> None:
        self.js("document.querySelector(`select[name='${arguments[0]}']`).value = arguments[1];",
                name, value)

    def url(self) -> str:
        return str(self.cmd("GET", "/url"))

    def shot(self, label: str) -> Path:
        import base64
        self.count += 1
        path = self.shots / f"{self.count:02d}-{label}.png"
        path.write_bytes(base64.b64decode(self.cmd("GET", "/screenshot")))
        return path

    def quit(self) -> None:
        self.cmd("DELETE", "")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def browser(cluster: VCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Browser]:
    install_dummy_os(cluster)
    port = free_port()
    log = tmp_path_factory.mktemp("chromedriver") / "chromedriver.log"
    driver = subprocess.Popen([DRIVER, f"--port={port}", "--allowed-ips=127.0.0.1",
                               f"--log-path={log}"], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: _answers(port), 30, "chromedriver to listen")
        shots = tmp_path_factory.mktemp("screenshots")
        b = Browser(port, shots)
        try:
            yield b
        finally:
            b.quit()
            print(f"screenshots in {shots}")
    finally:
        driver.terminate()
        driver.wait(30)


def _answers(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/status", timeout=2) as reply:
            return bool(json.loads(reply.read())["value"]["ready"])
    except OSError:
        return False


def wait_job_page(b: Browser, label: str) -> str:
    """On a job page: wait for its status to be final (the page's script follows the job's
    event stream, then reloads); the status."""
    def final() -> str | None:
        try:
            status = b.text("#job-status")
        except AssertionError:
            return None  # between the reload and the new page
        return status if status in ("success", "error", "canceled") else None
    status = str(wait_for(final, 120, f"the job of {label} to end"))
    b.shot(f"job-{label}")
    return status


def test_a_browser_logs_in_creates_stops_and_starts(browser: Browser, cluster: VCluster,
                                                    gnt: Gnt) -> None:
    b = browser
    host, port = address(cluster)
    site = f"https://{host}:{port}"
    user, _, password = credentials(cluster).partition(":")

    b.go(f"{site}/ui/")
    assert "/ui/login" in b.url()
    b.type("input[name=user]", user)
    b.type("input[name=password]", "wrong")
    b.click("form.login button")
    assert "Wrong user name or password" in b.text(".flash")
    b.shot("wrong-password")
    b.type("input[name=user]", user)
    b.type("input[name=password]", password)
    b.click("form.login button")
    wait_for(lambda: b.url() == f"{site}/ui/", 30, "the dashboard after logging in")
    nodes = [b.cmd("GET", f"/element/{e}/text") for e in b.finds("table.nodes tbody tr td a")]
    assert nodes == ["node1", "node2", "node3"]
    b.shot("dashboard")

    b.go(f"{site}/ui/create")
    b.type("input[name=name]", "chrome-a")
    b.select("disk_template", "diskless")
    b.select("os", "dummy+default")
    b.select("pnode", "node2")
    b.type("input[name=memory]", "128")
    for box in ("name_check", "ip_check"):
        b.click(f"input[name={box}]")
    b.shot("create-form")
    b.click("form.create button[type=submit]")
    wait_for(lambda: "/ui/jobs/" in b.url(), 30, "the create job's page")
    assert wait_job_page(b, "create") == "success"
    assert b.text("#job-log")  # the create's log lines
    out = gnt("gnt-instance", "list", "--no-headers", "-o", "name,status", "chrome-a")[1]
    assert out.split() == ["chrome-a", "running"]

    for action, expected in (("stop", "ADMIN_down"), ("start", "running")):
        b.go(f"{site}/ui/instances/chrome-a")
        b.click(f"a.button[href='/ui/instances/chrome-a/{action}']")
        assert f"Yes, {action} chrome-a" in b.text("main form button")
        b.shot(f"confirm-{action}")
        b.click("main form button")
        wait_for(lambda: "/ui/jobs/" in b.url(), 30, f"the {action} job's page")
        assert wait_job_page(b, action) == "success"
        status = gnt("gnt-instance", "list", "--no-headers", "-o", "status", "chrome-a")[1]
        assert status.strip() == expected

    b.go(f"{site}/ui/instances?q=chrome")
    assert b.finds("a[href='/ui/instances/chrome-a']")
    b.shot("instance-list")


def test_a_running_jobs_log_streams_into_the_page(browser: Browser, cluster: VCluster
                                                  ) -> None:
    """A job that waits 3 s, then verifies: the page shows it running, then the verify lines
    arrive in the log without a reload (the event stream), then the final status."""
    b = browser
    host, port = address(cluster)
    job_id = Client(master_paths(cluster).master_socket).submit(
        [{"OP_ID": "OP_TEST_DELAY", "duration": 3.0}, {"OP_ID": "OP_CLUSTER_VERIFY"}])
    b.go(f"https://{host}:{port}/ui/jobs/{job_id}")
    assert b.text("#job-status") in ("queued", "waiting", "running")
    b.js("document.getElementById('job-log').dataset.marker = 'same page';")
    wait_for(lambda: "Verifying" in b.text("#job-log") and
             b.js("return document.getElementById('job-log').dataset.marker || ''") ==
             "same page", 60, "verify's log lines to stream into the open page")
    b.shot("log-streaming")
    assert wait_job_page(b, "verify") == "success"

