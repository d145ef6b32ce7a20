"""A script's data one chunk per call (node/backup_stream.py): an export script's output read
in order, an import script fed, a resent chunk answered again, a failing script's exit code
and log in the error, and a stream nobody drives any more killed."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from cardume import errors
from cardume.node import backup_stream
from cardume.node.storage.loop import LoopDevices


def start(tmp_path: Path, key: str, script: str, reading: bool,
          cleaned: list[str] | None = None) -> backup_stream.Stream:
    return backup_stream.start(
        key, f"test script {key}", ["/bin/sh", "-c", script], cwd=str(tmp_path),
        env={"PATH": "/usr/bin:/bin"}, logfile=str(tmp_path / f"{key.replace('/', '_')}.log"),
        reading=reading, loops=LoopDevices(),
        cleanup=lambda: (cleaned if cleaned is not None else []).append(key))


def test_an_export_script_is_read_chunk_by_chunk(tmp_path: Path) -> None:
    cleaned: list[str] = []
    stream = start(tmp_path, "a/0", "printf 0123456789", reading=True, cleaned=cleaned)
    assert backup_stream.read(stream, 0, 4) == (b"0123", False)
    assert backup_stream.read(stream, 0, 4) == (b"0123", False)  # resent: the same answer
    assert backup_stream.read(stream, 4, 4) == (b"4567", False)
    assert backup_stream.read(stream, 8, 4) == (b"89", True)
    assert cleaned == ["a/0"]
    with pytest.raises(errors.WrongState, match="offset 2"):
        backup_stream.read(stream, 2, 4)
    assert backup_stream.drop("a/") == 1
    assert backup_stream.find("a/0") is None


def test_a_failing_export_script_says_why(tmp_path: Path) -> None:
    stream = start(tmp_path, "b/0", "printf data; echo broken disk >&2; exit 3", reading=True)
    with pytest.raises(errors.ExecError) as caught:
        backup_stream.read(stream, 0, 1024)
    assert "exited with exit code 3" in caught.value.message
    assert "broken disk" in str(caught.value.hint)
    assert backup_stream.find("b/0") is None


def test_an_import_script_is_fed_and_waited_for(tmp_path: Path) -> None:
    out = tmp_path / "disk"
    stream = start(tmp_path, "c/0", f"cat > {out}", reading=False)
    backup_stream.write(stream, 0, b"abc", 0, False)
    backup_stream.write(stream, 0, b"abc", 0, False)  # resent: skipped
    backup_stream.write(stream, 3, None, 5, False)
    backup_stream.write(stream, 8, b"z", 0, True)
    assert out.read_bytes() == b"abc" + bytes(5) + b"z"
    assert backup_stream.find("c/0") is None


def test_an_import_script_that_stops_reading_fails_the_write(tmp_path: Path) -> None:
    stream = start(tmp_path, "d/0", "echo refusing >&2; exit 4", reading=False)
    # the script may end before or after the first chunks: the write that meets it fails
    with pytest.raises(errors.ExecError) as caught:
        for offset in range(0, 64 * 1024 * 1024, 1024 * 1024):
            backup_stream.write(stream, offset, bytes(1024 * 1024), 0, False)
        backup_stream.write(stream, 64 * 1024 * 1024, b"", 0, True)
    assert "refusing" in str(caught.value.hint)


def test_a_stream_nobody_drives_is_killed(tmp_path: Path) -> None:
    stream = start(tmp_path, "e/0", "sleep 600", reading=True)
    pid = stream.proc.pid
    assert backup_stream.reap(time.monotonic() + backup_stream.IDLE_LIMIT + 1) == 1
    assert backup_stream.find("e/0") is None
    assert stream.proc.poll() is not None
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
