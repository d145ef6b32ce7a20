"""The web console's serial and VNC consoles on a local cluster with a real kvm guest
(tests/kvmguest under QEMU, software emulation here): a WebSocket client in Python logs in
as a browser does, opens the console page, connects to its socket with the page's one-time
token and reads what the guest prints, types a command and reads the answer; the VNC socket
gives QEMU's RFB greeting. All of it goes through the REST daemon's HTTPS port and the node
daemon's mutual TLS, as ``gnt-instance console`` does. Refusals: a read user, a stopped or
unknown instance, the fake hypervisor, a second session on a console in use.

The guest has no NIC (no taps, no namespace needed); its VNC display listens on the node's
loopback only."""

from __future__ import annotations

import base64
import contextlib
import html
import json
import os
import re
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from integration_kit import VCluster, install_dummy_os, pid_alive, qemus, wait_for
from test_rapi_daemon import address, credentials, master_paths
from test_ui_console import Browser

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/, for kvmguest

QEMU = shutil.which("qemu-system-x86_64")
pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(QEMU is None, reason="qemu-system-x86_64 is not installed")]

MARKER = "cardume-guest: up"
BOOT_TIMEOUT = 180.0
NAME = "webkvm"


class WsClient:
    """A minimal WebSocket client over TLS (masked frames, as the RFC requires)."""

    def __init__(self, where: tuple[str, int], path: str, cookie: str,
                 origin: str | None) -> None:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        self.sock = ctx.wrap_socket(socket.create_connection(where, timeout=60))
        key = base64.b64encode(os.urandom(16)).decode()
        host = f"{where[0]}:{where[1]}"
        lines = [f"GET {path} HTTP/1.1", f"Host: {host}", "Upgrade: websocket",
                 "Connection: Upgrade", "Sec-WebSocket-Version: 13",
                 f"Sec-WebSocket-Key: {key}", "Sec-WebSocket-Protocol: binary",
                 f"Cookie: {cookie}"]
        if origin is not None:
            lines.append(f"Origin: {origin}")
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        self.buf = b""
        while b"\r\n\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                break
            self.buf += chunk
        head, _, self.buf = self.buf.partition(b"\r\n\r\n")
        self.head = head.decode("latin-1")
        self.status = int(self.head.split(" ", 2)[1]) if self.head else 0

    def _read(self, n: int) -> bytes:
        while len(self.buf) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError("the server closed the connection")
            self.buf += chunk
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def frame(self) -> tuple[int, bytes]:
        b0, b1 = self._read(2)
        n = b1 & 0x7F
        if n == 126:
            n = struct.unpack("!H", self._read(2))[0]
        elif n == 127:
            n = struct.unpack("!Q", self._read(8))[0]
        return b0 & 0x0F, self._read(n)

    def send(self, data: bytes, opcode: int = 2) -> None:
        mask = os.urandom(4)
        n = len(data)
        head = bytes([0x80 | opcode]) + (bytes([0x80 | n]) if n < 126 else
                                         bytes([0x80 | 126]) + struct.pack("!H", n))
        body = bytes(b ^ mask[i % 4] for i, b in enumerate(data))
        self.sock.sendall(head + mask + body)

    def read_until(self, needle: bytes, timeout: float = 60.0) -> bytes:
        """Console bytes until ``needle`` shows (a close frame is an error)."""
        got = b""
        deadline = time.monotonic() + timeout
        while needle not in got:
            self.sock.settimeout(max(0.1, deadline - time.monotonic()))
            opcode, data = self.frame()
            assert opcode != 8, f"closed: {data[2:].decode(errors='replace')}; got {got!r}"
            got += data
        return got

    def close_reason(self) -> tuple[int, str]:
        """The close frame's code and reason (other frames skipped)."""
        while True:
            opcode, data = self.frame()
            if opcode == 8:
                return struct.unpack("!H", data[:2])[0], data[2:].decode()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.send(struct.pack("!H", 1000), opcode=8)
        self.sock.close()


def console_path(browser: Browser, name: str, kind: str = "console") -> str:
    status, text = browser.get(f"/ui/instances/{name}/{kind}")
    assert status == 200, text
    found = re.search(r'data-ws="([^"]+)"', text)
    assert found, text
    return html.unescape(found.group(1))


def serial_log(cluster: VCluster, name: str, node: str = "node1") -> str:
    path = cluster.node_dir(node) / "hv" / "kvm" / f"{name}.serial.log"
    return path.read_text(errors="replace") if path.exists() else ""


@pytest.fixture(scope="module")
def guest() -> Any:
    import kvmguest
    return kvmguest.build()


@pytest.fixture(scope="module")
def kvm(cluster: VCluster, guest: Any) -> Iterator[str]:
    """A running kvm instance (no NIC, a VNC display on loopback) booted to its shell."""
    install_dummy_os(cluster)
    cluster.gnt("gnt-cluster", "modify", "--enabled-hypervisors=kvm,fake")
    hv = ",".join([f"kvm:kernel_path={guest.kernel}", f"initrd_path={guest.initrd}",
                   "root_path=", "kernel_args=quiet", "vnc_bind_address=127.0.0.1"])
    started = time.monotonic()
    try:
        cluster.gnt("gnt-instance", "add", "-t", "diskless", "-o", "dummy+default",
                    "--no-name-check", "--no-ip-check", "--no-nics", "-n", "node1",
                    "-B", "memory=160", "-H", hv, NAME)
        wait_for(lambda: MARKER in serial_log(cluster, NAME), BOOT_TIMEOUT,
                 "the guest's marker")
        runtime = cluster.node_dir("node1") / "hv" / "kvm" / f"{NAME}.json"
        accel = json.loads(runtime.read_text()).get("accel")
        print(f"\n{NAME} reached userspace {time.monotonic() - started:.1f}s after "
              f"gnt-instance add (QEMU accel {accel})")
        yield NAME
    finally:
        cluster.gnt("gnt-instance", "remove", "-f", "--shutdown-timeout", "0", NAME,
                    check=False)
        for pid in qemus(cluster):  # one a failed removal left
            if pid_alive(pid):
                os.kill(pid, signal.SIGKILL)


@pytest.fixture(scope="module")
def admin(cluster: VCluster) -> Browser:
    user, _, password = credentials(cluster).partition(":")
    browser = Browser(address(cluster))
    browser.login(user, password)
    return browser


def test_serial_console_over_a_websocket(cluster: VCluster, kvm: str,
                                         admin: Browser) -> None:
    where = address(cluster)
    started = time.monotonic()
    ws = WsClient(where, console_path(admin, kvm), admin.cookie, admin.origin)
    try:
        assert ws.status == 101, ws.head
        assert "Sec-WebSocket-Protocol: binary" in ws.head
        opened = time.monotonic() - started
        ws.send(b"\n")  # a prompt, whatever the guest printed before we came
        answer = b""

        def answered() -> bool:
            nonlocal answer
            ws.send(b"echo cardume-$((40+2))\n")
            with contextlib.suppress(TimeoutError, socket.timeout):
                answer = ws.read_until(b"cardume-42", timeout=5)
            return b"cardume-42" in answer
        wait_for(answered, 60, "the guest's answer on the serial console", interval=0.5)
        print(f"\nconsole open {opened * 1000:.0f} ms, answered "
              f"{time.monotonic() - started:.1f} s after the connection")
    finally:
        ws.close()


def test_a_console_in_use_is_refused_then_free_again(cluster: VCluster, kvm: str,
                                                     admin: Browser) -> None:
    where = address(cluster)
    first = WsClient(where, console_path(admin, kvm), admin.cookie, admin.origin)
    try:
        assert first.status == 101
        second = WsClient(where, console_path(admin, kvm), admin.cookie, admin.origin)
        assert second.status == 101
        code, reason = second.close_reason()
        assert code == 1011 and "in use by another session" in reason, reason
        second.sock.close()
    finally:
        first.close()

    def free() -> bool:
        again = WsClient(where, console_path(admin, kvm), admin.cookie, admin.origin)
        try:
            again.send(b"echo free-$((1+1))\n")
            with contextlib.suppress(TimeoutError, socket.timeout, AssertionError):
                again.read_until(b"free-2", timeout=5)
                return True
            return False
        finally:
            again.close()
    wait_for(free, 30, "the console to be free once the first session closed", interval=0.5)


def test_vnc_console_over_a_websocket(cluster: VCluster, kvm: str, admin: Browser) -> None:
    ws = WsClient(address(cluster), console_path(admin, kvm, "vnc"), admin.cookie,
                  admin.origin)
    try:
        assert ws.status == 101, ws.head
        banner = ws.read_until(b"\n", timeout=30)
        assert re.fullmatch(rb"RFB 003\.00\d\n", banner), banner  # QEMU's greeting
        ws.send(b"RFB 003.008\n")
        opcode, types = ws.frame()
        assert types[0] >= 1 and 1 in types[1:1 + types[0]]  # "None": no password here
    finally:
        ws.close()


def test_refusals(cluster: VCluster, kvm: str, admin: Browser) -> None:
    where = address(cluster)
    users = master_paths(cluster).rapi_users
    with open(users, "a", encoding="utf-8") as handle:
        handle.write("conreader {cleartext}readpw read\n")
    pid = cluster.pid(cluster.master(), "masterd")
    assert pid is not None
    os.kill(pid, signal.SIGHUP)
    reader = Browser(where)
    wait_for(lambda: reader.post("/ui/login", {"user": "conreader",
                                               "password": "readpw"})[0] == 303,
             30, "the console to accept the read user")
    status, text = reader.get(f"/ui/instances/{kvm}/console")
    assert status == 403 and "needs write access" in text
    path = console_path(admin, kvm)
    assert WsClient(where, path, reader.cookie, reader.origin).status == 403
    assert WsClient(where, path, "", admin.origin).status == 401
    assert WsClient(where, path, admin.cookie, "https://evil.example").status == 403

    cluster.gnt("gnt-instance", "add", "-t", "diskless", "-o", "dummy+default",
                "--no-name-check", "--no-ip-check", "--no-nics", "-n", "node2",
                "--hypervisor", "kvm:kernel_path=/nonexistent", "--no-start", "kvmoff")
    cluster.gnt("gnt-instance", "add", "-t", "diskless", "-o", "dummy+default",
                "--no-name-check", "--no-ip-check", "--no-nics", "-n", "node2",
                "--hypervisor", "fake", "fakeon")
    try:
        for page, expected, words in (
                ("/ui/instances/nosuch/console", 404, "nosuch"),
                ("/ui/instances/kvmoff/console", 409, "instance kvmoff is not running"),
                ("/ui/instances/kvmoff/vnc", 409, "instance kvmoff is not running"),
                ("/ui/instances/fakeon/console", 409, "fake hypervisor")):
            status, text = admin.get(page)
            assert status == expected and words in html.unescape(text), (page, text)
    finally:
        for name in ("kvmoff", "fakeon"):
            cluster.gnt("gnt-instance", "remove", "-f", "--shutdown-timeout", "0", name,
                        check=False)
    assert ws_closed_cleanly(where, admin, kvm)


def ws_closed_cleanly(where: tuple[str, int], admin: Browser, name: str) -> bool:
    """A console closed by the browser is answered with a close frame."""
    ws = WsClient(where, console_path(admin, name), admin.cookie, admin.origin)
    try:
        ws.send(struct.pack("!H", 1000) + b"bye", opcode=8)
        return ws.close_reason()[0] == 1000
    finally:
        ws.sock.close()


# --- in a real browser ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def chrome(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """Headless Chromium over WebDriver (test_ui_browser's driver); screenshots kept in a
    temporary directory, printed at the end."""
    from test_ui_browser import CHROMIUM, DRIVER, _answers, free_port
    from test_ui_browser import Browser as Chrome
    if not (os.path.exists(CHROMIUM) and os.path.exists(DRIVER)):
        pytest.skip("chromium and chromium-driver are not installed (./dev install)")
    port = free_port()
    log = tmp_path_factory.mktemp("chromedriver") / "chromedriver.log"
    driver = subprocess.Popen([DRIVER, f"--port={port}", "--allowed-ips=127.0.0.1",
                               f"--log-path={log}"], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: _answers(port), 30, "chromedriver to listen")
        shots = tmp_path_factory.mktemp("console-screenshots")
        b = Chrome(port, shots)
        try:
            yield b
        finally:
            b.quit()
            print(f"\nscreenshots in {shots}")
    finally:
        driver.terminate()
        driver.wait(30)


def test_typing_into_the_serial_console_in_chromium(cluster: VCluster, kvm: str,
                                                    chrome: Any) -> None:
    b = chrome
    host, port = address(cluster)
    site = f"https://{host}:{port}"
    user, _, password = credentials(cluster).partition(":")
    b.go(f"{site}/ui/login")
    b.type("input[name=user]", user)
    b.type("input[name=password]", password)
    b.click("form.login button")
    wait_for(lambda: b.url() == f"{site}/ui/", 30, "the dashboard after logging in")

    b.go(f"{site}/ui/instances/{kvm}")
    started = time.monotonic()
    b.click(f"a.button.console[href='/ui/instances/{kvm}/console']")
    b.find("#console[data-state=open]")  # xterm.js loaded, its WebSocket open
    opened = time.monotonic() - started
    keys = b.find(".xterm-helper-textarea")

    def screen() -> str:
        return str(b.js("return document.querySelector('.xterm-rows').textContent;"))

    def answered() -> bool:
        b.cmd("POST", f"/element/{keys}/value", {"text": "echo web-$((6*7))\ue007"})
        with contextlib.suppress(AssertionError):  # typed again if no answer within 5 s
            wait_for(lambda: "web-42" in screen(), 5, "the answer", interval=0.2)
        return "web-42" in screen()
    wait_for(answered, 60, "the guest's answer in xterm.js", interval=0)
    shot = b.shot("serial-console")
    print(f"\nserial console page open in the browser {opened:.1f} s; screenshot {shot}")
    errors = b.js("return document.getElementById('console-state').textContent;")
    assert str(errors).startswith("connected"), errors
    # xterm.js's theme (a <style> it makes, which the page's CSP must let in) colours the
    # text: without it the text is the page's dark grey on black
    color = b.js("return getComputedStyle(document.querySelector('.xterm-rows')).color;")
    assert color == "rgb(255, 255, 255)", color

    b.go(f"{site}/ui/instances/{kvm}/vnc")
    b.find("#console[data-state=open]")  # noVNC connected to QEMU's display
    b.find("#console canvas")
    b.shot("vnc-console")
