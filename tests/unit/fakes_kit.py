"""Fakes and helpers the unit tests share, one copy each (their fixtures are in conftest.py):
the LUXI client the CLI talks to, the nodes a master's query asks what runs, the /proc/drbd
sections of the QA cluster's captures (tests/fixtures/drbd), and waiting on an event loop
for a condition."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cardume import errors, objects
from cardume.config.writer import ConfigWriter
from cardume.rpc.calls import NodeCalls

DRBD_FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "drbd"


class RunningRpc(NodeCalls):
    """The nodes as a master's query sees them: instance_info_all answers from a table per
    node name; a node in ``down`` does not answer."""

    def __init__(self, running: dict[str, dict[str, Any]] | None = None,
                 down: tuple[str, ...] = ()) -> None:
        self.running = running or {}
        self.down = set(down)

    async def call(self, node: objects.Node, call: str, args: dict[str, Any] | None = None,
                   timeout: float | None = None) -> Any:
        assert call == "instance_info_all"
        if node.name in self.down:
            raise errors.RpcError(f"node {node.name}: connection refused", node=node.name)
        return self.running.get(node.name, {})


class QueryMaster:
    """What the master's query code reads of the master: its config and its node calls."""

    def __init__(self, cfg: ConfigWriter, rpc: RunningRpc) -> None:
        self.cfg, self.rpc = cfg, rpc


class FakeClient:
    """Stands in for ``cardume.master.client.Client``: records every call; answers from ``replies``
    (a value, or a function of the call's arguments); submitted jobs get ids from 100 on;
    ``wait_job`` raises the job's entry in ``outcomes``, if any."""

    calls: list[tuple[str, tuple[Any, ...]]] = []
    outcomes: dict[int, Exception | None] = {}
    replies: dict[str, Any] = {}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __enter__(self) -> FakeClient:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def call(self, method: str, *args: Any) -> Any:
        FakeClient.calls.append((method, args))
        if method == "SubmitManyJobs" and method not in FakeClient.replies:
            return [[True, 100 + index] for index in range(len(args[0]))]
        reply = FakeClient.replies[method]
        return reply(*args) if callable(reply) else reply

    def wait_job(self, job_id: int, feedback: bool = True) -> list[Any]:
        outcome = FakeClient.outcomes.get(job_id)
        if outcome is not None:
            raise outcome
        return [None]



def drbd_sections(name: str) -> dict[str, str]:
    """``{heading: /proc/drbd text}`` of every 'cat /proc/drbd' block of a capture (a
    '##### heading' line, '$ cat /proc/drbd', the text, up to a '---' or the next heading)."""
    found = {}
    text = (DRBD_FIXTURES / name).read_text()
    for block in re.split(r"^##### ", text, flags=re.MULTILINE)[1:]:
        heading, _, body = block.partition("\n")
        if not body.startswith("$ cat /proc/drbd"):
            continue
        lines = []
        for line in body.splitlines()[1:]:
            if line.startswith(("---", "#####")):
                break
            lines.append(line)
        found[heading] = "\n".join(lines)
    return found


async def wait_until(condition: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    """Let the loop's other tasks run until ``condition`` holds; fails naming ``what``
    after ``timeout`` seconds."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, f"no {what} in {timeout}s"
        await asyncio.sleep(0.001)
