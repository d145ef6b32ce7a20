"""A running OS export or import script whose data travels one chunk per call.

An export to another node reads the export script's stdout from a pipe, chunk by chunk, as
the master asks for it; an import from another node writes each chunk the master sends into
the import script's stdin. Neither side keeps a copy of the dump, and the script waits while
the master is slow (the pipe is full or empty). A stream lives across calls, keyed by its
staging directory and disk index; it keeps the last chunk so that a call sent twice gets the
same answer, and it is killed when its export is aborted or after IDLE_LIMIT without calls
(the master that drove it has gone).
"""

from __future__ import annotations

import logging
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from typing import Any

from cardume import errors
from cardume.node import children, osapi
from cardume.node.cmd import KILL_GRACE, kill_group
from cardume.node.storage.loop import LoopDevices

log = logging.getLogger("cardume.noded")

IDLE_LIMIT = 600.0
EXIT_WAIT = 600.0  # for the script to end once its data is through
_streams: dict[str, Stream] = {}
_lock = threading.Lock()
_reaper: threading.Thread | None = None


class Stream:
    """One script with its pipe; every use holds ``lock`` (one chunk at a time)."""

    def __init__(self, key: str, what: str, proc: subprocess.Popen[bytes], logfile: str,
                 loops: LoopDevices, cleanup: Callable[[], None]) -> None:
        self.key = key
        self.what = what
        self.proc = proc
        self.logfile = logfile
        self.loops = loops
        self.cleanup = cleanup
        self.record = children.record_group(proc.pid)
        self.lock = threading.Lock()
        self.position = 0
        self.last: tuple[int, Any] | None = None  # (offset, reply) of the last chunk
        self.finished = False
        self.flush_error: str | None = None
        self.used = time.monotonic()

    def end(self, kill: bool) -> int | None:
        """Stop using the script: its exit code (None if killed or timed out); its loop
        devices, snapshot and process group go."""
        if self.finished:
            return self.proc.returncode
        self.finished = True
        code: int | None = None
        try:
            for pipe in (self.proc.stdin, self.proc.stdout):
                if pipe is not None:
                    try:
                        pipe.close()
                    except OSError:
                        pass
            if kill:
                kill_group(self.proc, signal.SIGKILL)
            try:
                code = self.proc.wait(timeout=KILL_GRACE if kill else EXIT_WAIT)
            except subprocess.TimeoutExpired:
                kill_group(self.proc, signal.SIGKILL)
                self.proc.wait()
            kill_group(self.proc, signal.SIGKILL)  # what it left behind in its group
        finally:
            children.forget(self.record)
            self.loops.detach_all()
            if self.loops.flush_errors:
                self.flush_error = self.loops.flush_errors[0]
            try:
                self.cleanup()
            except (OSError, errors.CardumeError) as err:
                log.warning("cleanup after %s: %s", self.what, err)
        return None if kill else code

    def failure(self, code: int | None) -> errors.ExecError:
        reason = "was stopped" if code is None else f"exited with exit code {code}"
        lines = osapi.tail(self.logfile)
        hint = (f"last lines of {self.logfile}:\n" + "\n".join(lines)) if lines else \
            f"the script printed nothing (log file {self.logfile})"
        return errors.ExecError(f"{self.what} failed ({reason})", hint)


def start(key: str, what: str, argv: list[str], *, cwd: str, env: dict[str, str],
          logfile: str, reading: bool, loops: LoopDevices,
          cleanup: Callable[[], None]) -> Stream:
    """Start a script whose stdout (``reading``) or stdin is the stream's pipe."""
    with _lock:
        if key in _streams:
            raise errors.WrongState(f"{what}: a stream {key} runs already")
    with open(logfile, "ab") as messages:
        try:
            proc = subprocess.Popen(
                argv, cwd=cwd, env=env, close_fds=True, start_new_session=True,
                stdin=subprocess.DEVNULL if reading else subprocess.PIPE,
                stdout=subprocess.PIPE if reading else messages, stderr=messages)
        except OSError as err:
            raise errors.ExecError(f"can't run {argv[0]}: {err.strerror}") from None
    stream = Stream(key, what, proc, logfile, loops, cleanup)
    with _lock:
        _streams[key] = stream
    _start_reaper()
    return stream


def find(key: str) -> Stream | None:
    with _lock:
        return _streams.get(key)


def drop(prefix: str) -> int:
    """Kill the streams whose key starts with ``prefix`` (an aborted export); how many."""
    with _lock:
        found = [s for k, s in _streams.items() if k.startswith(prefix)]
        for stream in found:
            _streams.pop(stream.key, None)
    for stream in found:
        with stream.lock:
            stream.end(kill=True)
    return len(found)


def read(stream: Stream, offset: int, length: int) -> tuple[bytes, bool]:
    """The chunk at ``offset``: (data, eof). A resent call gets the same chunk; at the end,
    the script's failure is raised."""
    with stream.lock:
        stream.used = time.monotonic()
        if stream.last is not None and stream.last[0] == offset:
            return stream.last[1]
        if stream.finished or offset != stream.position:
            raise errors.WrongState(f"{stream.what}: asked for offset {offset}, the stream "
                                    f"is at {stream.position}")
        assert stream.proc.stdout is not None
        data = stream.proc.stdout.read(length)  # (buffered: short only at the end)
        eof = len(data) < length
        if eof:
            code = stream.end(kill=False)
            if code != 0:
                _forget(stream)
                raise stream.failure(code)
        stream.last = (offset, (data, eof))
        stream.position += len(data)
        return data, eof


def write(stream: Stream, offset: int, data: bytes | None, zeros: int, eof: bool) -> None:
    """Feed a chunk at ``offset`` (a resent one is skipped); ``eof``: close the script's
    input and wait for it, raising its failure."""
    with stream.lock:
        stream.used = time.monotonic()
        size = len(data) if data is not None else zeros
        if stream.last is not None and stream.last[0] == offset:
            return
        if stream.finished or offset != stream.position:
            raise errors.WrongState(f"{stream.what}: sent offset {offset}, the stream is "
                                    f"at {stream.position}")
        assert stream.proc.stdin is not None
        try:
            if data is not None:
                stream.proc.stdin.write(data)
            else:
                block = bytes(min(zeros, 1024 * 1024))
                left = zeros
                while left:
                    stream.proc.stdin.write(block[:left])
                    left -= min(left, len(block))
            if eof:
                stream.proc.stdin.close()
        except BrokenPipeError:  # the script ended early: its exit code says why
            code = stream.end(kill=False)
            _forget(stream)
            raise stream.failure(code if code != 0 else None) from None
        stream.last = (offset, None)
        stream.position += size
        if eof:
            code = stream.end(kill=False)
            _forget(stream)
            if code != 0:
                raise stream.failure(code)
            if stream.flush_error:
                raise errors.ExecError("what the import script wrote may not have reached "
                                       f"the disk: {stream.flush_error}")


def _forget(stream: Stream) -> None:
    with _lock:
        if _streams.get(stream.key) is stream:
            del _streams[stream.key]


def _start_reaper() -> None:
    global _reaper
    with _lock:
        if _reaper is not None and _reaper.is_alive():
            return
        _reaper = threading.Thread(target=_reap_forever, name="backup-streams",
                                   daemon=True)
        _reaper.start()


def reap(now: float | None = None) -> int:
    """Kill the streams nobody has used for IDLE_LIMIT (their master went away)."""
    now = time.monotonic() if now is None else now
    with _lock:
        idle = [s for s in _streams.values() if now - s.used > IDLE_LIMIT]
        for stream in idle:
            _streams.pop(stream.key, None)
    for stream in idle:
        log.warning("%s: no call for %.0f s, stopped", stream.what, IDLE_LIMIT)
        with stream.lock:
            stream.end(kill=True)
    return len(idle)


def _reap_forever() -> None:
    while True:
        time.sleep(60.0)
        reap()
