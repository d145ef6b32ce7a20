"""The QMP client against a fake QMP server on a unix socket."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from cardume import errors
from cardume.node.hypervisor.qmp import QmpClient, QmpError

Reply = Callable[[dict[str, Any]], list[dict[str, Any]]]


class FakeQmp:
    """Greets, then answers each command with what ``replies`` returns (a list of
    messages: events and/or the answer); records the commands."""

    def __init__(self, path: str, replies: Reply, greet: bool = True) -> None:
        self.path = path
        self.replies = replies
        self.greet = greet
        self.commands: list[dict[str, Any]] = []
        self.server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.server.bind(path)
        self.server.listen(1)
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        try:
            conn, _ = self.server.accept()
        except OSError:
            return
        with conn:
            if self.greet:
                conn.sendall(b'{"QMP": {"version": {"qemu": {"major": 7}}, '
                             b'"capabilities": []}}\r\n')
            buf = b""
            while True:
                data = conn.recv(4096)
                if not data:
                    return
                buf += data
                while b"\n" in buf:
                    line, _, buf = buf.partition(b"\n")
                    request = json.loads(line)
                    self.commands.append(request)
                    if request["execute"] == "quit":
                        return  # like QEMU: the connection ends
                    for message in self.replies(request):
                        conn.sendall(json.dumps(message).encode() + b"\r\n")

    def close(self) -> None:
        self.server.close()


@pytest.fixture
def sock(tmp_path: Path) -> Iterator[str]:
    yield str(tmp_path / "qmp.sock")


def standard(request: dict[str, Any]) -> list[dict[str, Any]]:
    command = request["execute"]
    if command == "qmp_capabilities":
        return [{"return": {}}]
    if command == "query-status":
        return [{"event": "RESUME", "data": {}}, {"return": {"status": "running"}}]
    if command == "query-cpus-fast":
        return [{"return": [{"cpu-index": 0}, {"cpu-index": 1}]}]
    if command == "system_powerdown":
        return [{"return": {}}, {"event": "POWERDOWN", "data": {}}]
    if command == "hang":
        return []
    return [{"error": {"class": "CommandNotFound",
                       "desc": f"The command {command} has not been found"}}]


def test_greeting_capabilities_and_commands(sock: str) -> None:
    server = FakeQmp(sock, standard)
    with QmpClient(sock, timeout=5) as qmp:
        assert qmp.greeting["version"]["qemu"]["major"] == 7
        assert qmp.execute("query-status") == {"status": "running"}
        assert len(qmp.execute("query-cpus-fast")) == 2
        assert [e["event"] for e in qmp.events] == ["RESUME"]
        qmp.execute("system_powerdown")
        assert qmp.wait_event("POWERDOWN", 2) is not None
        assert qmp.wait_event("SHUTDOWN", 0.2) is None
    assert [c["execute"] for c in server.commands] == [
        "qmp_capabilities", "query-status", "query-cpus-fast", "system_powerdown"]
    server.close()


def test_arguments_are_sent(sock: str) -> None:
    server = FakeQmp(sock, lambda r: [{"return": r.get("arguments", {})}])
    with QmpClient(sock, timeout=5) as qmp:
        assert qmp.execute("migrate", uri="tcp:127.0.0.1:1") == {"uri": "tcp:127.0.0.1:1"}
    assert server.commands[-1] == {"execute": "migrate",
                                   "arguments": {"uri": "tcp:127.0.0.1:1"}}
    server.close()


def test_error_names_class_and_description(sock: str) -> None:
    server = FakeQmp(sock, standard)
    with QmpClient(sock, timeout=5) as qmp, pytest.raises(QmpError) as caught:
        qmp.execute("no-such-thing")
    assert caught.value.error_class == "CommandNotFound"
    assert "CommandNotFound" in str(caught.value) and "no-such-thing" in str(caught.value)
    assert isinstance(caught.value, errors.CardumeError)
    server.close()


def test_timeout_closes_the_connection(sock: str) -> None:
    server = FakeQmp(sock, standard)
    qmp = QmpClient(sock, timeout=5).connect()
    with pytest.raises(errors.ExecError, match="did not answer 'hang'"):
        qmp.execute("hang", qmp_timeout=0.3)
    assert not qmp.connected
    with pytest.raises(errors.ExecError, match="closed"):
        qmp.execute("query-status")
    server.close()


def test_no_greeting_times_out(sock: str) -> None:
    server = FakeQmp(sock, standard, greet=False)
    with pytest.raises(errors.ExecError, match="did not answer"):
        QmpClient(sock, timeout=0.3).connect()
    server.close()


def test_missing_socket(sock: str) -> None:
    with pytest.raises(errors.ExecError, match="can't connect to QMP socket"):
        QmpClient(sock).connect()


def test_server_going_away(sock: str) -> None:
    server = FakeQmp(sock, standard)
    qmp = QmpClient(sock, timeout=5).connect()
    with pytest.raises(errors.ExecError, match="closed the QMP connection"):
        qmp.execute("quit")
    server.close()
