"""A small synchronous client of QEMU's machine protocol (QMP) over a unix socket.

QMP is line-delimited JSON: on connect QEMU sends a greeting (``{"QMP": {...}}``); the
client must send ``qmp_capabilities`` before any other command. Each command gets either
``{"return": ...}`` or ``{"error": {"class", "desc"}}``; asynchronous events
(``{"event": ...}``) may arrive at any time in between and are kept in :attr:`events`.

No third-party dependency, one command in flight at a time (the caller serializes).
"""

from __future__ import annotations

import contextlib
import json
import socket
import time
from types import TracebackType
from typing import Any

from cardume import errors

DEFAULT_TIMEOUT = 10.0
MAX_LINE = 16 * 1024 * 1024


class QmpError(errors.ExecError):
    """QEMU answered a command with an error: ``error_class`` is QMP's class
    (``GenericError``, ``CommandNotFound``, ``DeviceNotActive``...), ``desc`` its text."""

    def __init__(self, command: str, error_class: str, desc: str) -> None:
        super().__init__(f"QMP command '{command}' failed: {error_class}: {desc}")
        self.command = command
        self.error_class = error_class
        self.desc = desc


class QmpClient:
    """``with QmpClient(path) as qmp: qmp.execute("query-status")``.

    Connecting reads the greeting and negotiates capabilities. A connection that breaks or
    an answer that takes longer than ``timeout`` raises :class:`errors.ExecError` (the
    connection is closed then, since the stream may be out of step)."""

    def __init__(self, path: str, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.path = path
        self.timeout = timeout
        self.greeting: dict[str, Any] = {}
        self.events: list[dict[str, Any]] = []
        self._sock: socket.socket | None = None
        self._buf = b""

    # --- connection -------------------------------------------------------------------------

    def connect(self) -> QmpClient:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self.path)
        except OSError as err:
            sock.close()
            raise errors.ExecError(f"can't connect to QMP socket {self.path}: "
                                   f"{err.strerror or err}") from None
        self._sock = sock
        self._buf = b""
        try:
            greeting = self._read_message(time.monotonic() + self.timeout)
            if "QMP" not in greeting:
                raise errors.ExecError(f"QMP socket {self.path} sent no greeting: "
                                       f"{str(greeting)[:200]}")
            self.greeting = greeting["QMP"]
            self.execute("qmp_capabilities")
        except BaseException:
            self.close()
            raise
        return self

    def close(self) -> None:
        sock, self._sock = self._sock, None
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.close()

    @property
    def connected(self) -> bool:
        return self._sock is not None

    def __enter__(self) -> QmpClient:
        return self if self.connected else self.connect()

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.close()

    # --- commands ---------------------------------------------------------------------------

    def execute(self, command: str, qmp_timeout: float | None = None, **arguments: Any) -> Any:
        """Run one command; its ``return`` value, or :class:`QmpError` (``qmp_timeout``
        overrides the connection's timeout for this answer)."""
        if self._sock is None:
            raise errors.ExecError(f"QMP connection to {self.path} is closed")
        request: dict[str, Any] = {"execute": command}
        if arguments:
            request["arguments"] = arguments
        data = json.dumps(request).encode() + b"\n"
        try:
            self._sock.sendall(data)
        except OSError as err:
            self.close()
            raise errors.ExecError(f"QMP command '{command}' could not be sent "
                                   f"({self.path}): {err.strerror or err}") from None
        deadline = time.monotonic() + (self.timeout if qmp_timeout is None else qmp_timeout)
        while True:
            message = self._read_message(deadline, command)
            if "event" in message:
                self.events.append(message)
                continue
            if "return" in message:
                return message["return"]
            if "error" in message:
                error = message["error"] or {}
                raise QmpError(command, str(error.get("class", "GenericError")),
                               str(error.get("desc", "")))
            # anything else (a late greeting?) is ignored

    def wait_event(self, name: str, timeout: float) -> dict[str, Any] | None:
        """The first event called ``name`` (already received or arriving within timeout),
        removed from :attr:`events`; None on timeout or when QEMU closes the socket."""
        deadline = time.monotonic() + timeout
        while True:
            for index, event in enumerate(self.events):
                if event.get("event") == name:
                    return self.events.pop(index)
            if self._sock is None or time.monotonic() >= deadline:
                return None
            try:
                message = self._read_message(deadline, f"wait for event {name}")
            except errors.ExecError:
                return None
            if "event" in message:
                self.events.append(message)

    # --- reading ----------------------------------------------------------------------------

    def _read_message(self, deadline: float, what: str = "greeting") -> dict[str, Any]:
        sock = self._sock
        if sock is None:
            raise errors.ExecError(f"QMP connection to {self.path} is closed")
        while b"\n" not in self._buf:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self.close()
                raise errors.ExecError(f"QEMU did not answer '{what}' on {self.path} in time")
            sock.settimeout(remaining)
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                continue
            except OSError as err:
                self.close()
                raise errors.ExecError(f"QMP connection to {self.path} failed during "
                                       f"'{what}': {err.strerror or err}") from None
            if not chunk:
                self.close()
                raise errors.ExecError(f"QEMU closed the QMP connection ({self.path}) during "
                                       f"'{what}'")
            self._buf += chunk
            if len(self._buf) > MAX_LINE:
                self.close()
                raise errors.ExecError(f"QMP message from {self.path} is too large")
        line, _, self._buf = self._buf.partition(b"\n")
        try:
            message = json.loads(line)
        except ValueError:
            self.close()
            raise errors.ExecError(f"QMP socket {self.path} sent invalid JSON: "
                                   f"{line[:200]!r}") from None
        if not isinstance(message, dict):
            self.close()
            raise errors.ExecError(f"QMP socket {self.path} sent a non-object: "
                                   f"{line[:200]!r}")
        return message


class QmpPerCommand:
    """A QMP client that connects for each command and disconnects right after.

    QEMU serves one client at a time on a QMP socket; a second one waits, unanswered, until
    the first disconnects. A migration polls QEMU for minutes: holding one connection all
    along would leave ``migrate --cleanup`` (asked after the master died mid-migration) no
    way to see the source, so the long waits use this instead."""

    def __init__(self, path: str, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.path = path
        self.timeout = timeout

    def execute(self, command: str, **arguments: Any) -> Any:
        with QmpClient(self.path, self.timeout).connect() as qmp:
            return qmp.execute(command, **arguments)
