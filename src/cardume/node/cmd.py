"""Running node commands (lvm, drbdsetup, ...) through one seam that tests can replace.

``CommandRunner.run(argv, timeout=..., input=..., env=..., check=...)`` runs an argument list
(never a shell) and returns ``Result(rc, stdout, stderr)``. With ``check=True`` a non-zero
exit raises ``errors.ExecError`` whose one-line message names the command and the last
meaningful stderr line. ``SubprocessRunner`` is the real one; ``FakeRunner`` replays scripted
outputs keyed by argv prefix and records every call, for unit tests.

Commands run with a fixed, minimal environment: ``PATH`` limited to the system directories,
``LC_ALL=C`` so that numbers and messages are not localized (LVM prints ``256,00`` in some
locales), and ``LVM_SUPPRESS_FD_WARNINGS=1``. Arguments that carry secrets (DRBD's shared
secret) are masked wherever a command is shown: error messages and logs.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from cardume import errors
from cardume.node import children

log = logging.getLogger(__name__)

SEARCH_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"
DEFAULT_TIMEOUT = 60.0
KILL_GRACE = 5.0
BASE_ENV = {"PATH": SEARCH_PATH, "LC_ALL": "C", "LANG": "C", "LVM_SUPPRESS_FD_WARNINGS": "1"}

# Options whose value must never appear in messages or logs.
SECRET_OPTIONS = ("--shared-secret",)
MASK = "<hidden>"


def redact(argv: Sequence[str]) -> list[str]:
    """argv with the values of secret options masked (``--opt=value`` or ``--opt value``)."""
    shown: list[str] = []
    hide_next = False
    for arg in argv:
        if hide_next:
            shown.append(MASK)
            hide_next = False
            continue
        name = arg.split("=", 1)[0]
        if name in SECRET_OPTIONS:
            if "=" in arg:
                shown.append(f"{name}={MASK}")
            else:
                shown.append(arg)
                hide_next = True
            continue
        shown.append(arg)
    return shown


def describe(argv: Sequence[str], limit: int = 400) -> str:
    """A short, secret-free rendering of a command for messages."""
    text = " ".join(redact(argv))
    return text if len(text) <= limit else text[:limit - 3] + "..."


def last_line(text: str) -> str:
    """The last non-empty line of a command's output, preferring lines that are not mere
    warnings (LVM ends many failures with 'WARNING: This metadata update is NOT backed up')."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines:
        return ""
    useful = [line for line in lines if not line.upper().startswith("WARNING:")]
    return (useful or lines)[-1]


@dataclass(frozen=True)
class Result:
    rc: int
    stdout: str = ""
    stderr: str = ""
    argv: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return self.rc == 0

    @property
    def reason(self) -> str:
        """Why it failed, in one line (the last meaningful stderr line, else stdout's)."""
        return last_line(self.stderr) or last_line(self.stdout) or f"exit code {self.rc}"


def failure(result: Result) -> errors.ExecError:
    return errors.ExecError(f"'{describe(result.argv)}' failed (exit code {result.rc}): "
                            f"{result.reason}")


class CommandRunner:
    """Runs commands; subclasses implement ``_execute``."""

    def run(self, argv: Sequence[str], *, timeout: float = DEFAULT_TIMEOUT,
            input: str | None = None, env: Mapping[str, str] | None = None,
            check: bool = True) -> Result:
        args = [str(a) for a in argv]
        if not args:
            raise errors.InternalError("empty command")
        if any("\0" in a for a in args):
            raise errors.WrongInput(f"command argument contains a NUL byte: {describe(args)}")
        result = self._execute(args, timeout=timeout, input=input, env=env)
        if check and not result.ok:
            raise failure(result)
        return result

    def _execute(self, argv: list[str], *, timeout: float, input: str | None,
                 env: Mapping[str, str] | None) -> Result:
        raise NotImplementedError


class SubprocessRunner(CommandRunner):
    """The real runner: resolves ``argv[0]`` in the system directories, runs it in its own
    process group with a time limit (SIGTERM, then SIGKILL to the whole group). The group
    is recorded while it runs (children.py), so it dies with the node daemon, and whatever
    the command left in it is killed when it ends."""

    def __init__(self, search_path: str = SEARCH_PATH) -> None:
        self.search_path = search_path

    def which(self, name: str) -> str:
        if os.sep in name:
            return name
        found = shutil.which(name, path=self.search_path)
        if found is None:
            raise errors.EnvironmentProblem(f"command '{name}' is not available on this node",
                                            f"searched {self.search_path}")
        return found

    def _execute(self, argv: list[str], *, timeout: float, input: str | None,
                 env: Mapping[str, str] | None) -> Result:
        program = self.which(argv[0])
        full_env = {**BASE_ENV, **(env or {})}
        log.debug("running %s", describe(argv))
        try:
            proc = subprocess.Popen([program, *argv[1:]], env=full_env,
                                    stdin=subprocess.PIPE if input is not None
                                    else subprocess.DEVNULL,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                    close_fds=True, start_new_session=True)
        except OSError as err:
            raise errors.ExecError(f"can't run {argv[0]}: {err.strerror}") from None
        with children.bound(proc.pid):  # so it dies with the node daemon
            try:
                out, err_text = proc.communicate(input, timeout=timeout)
            except subprocess.TimeoutExpired:
                kill_group(proc, signal.SIGTERM)
                try:
                    proc.communicate(timeout=KILL_GRACE)
                except subprocess.TimeoutExpired:
                    kill_group(proc, signal.SIGKILL)
                    proc.communicate()
                raise errors.ExecError(f"'{describe(argv)}' did not finish in {timeout:g} s") \
                    from None
            finally:
                # what it left running in its group goes with it (a daemonizing program,
                # such as QEMU with -daemonize, has left the group for a session of its own)
                kill_group(proc, signal.SIGKILL)
        return Result(proc.returncode, out, err_text, tuple(argv))


def wait_group(proc: subprocess.Popen[Any], timeout: float) -> int | None:
    """Wait for a command started with start_new_session, bound to the node daemon's life
    (children.py): its exit code, or None when it ran past ``timeout`` (then its group got
    SIGTERM, and SIGKILL after KILL_GRACE). What it left in its group is killed either
    way."""
    with children.bound(proc.pid):
        try:
            return proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            kill_group(proc, signal.SIGTERM)
            try:
                proc.wait(timeout=KILL_GRACE)
            except subprocess.TimeoutExpired:
                kill_group(proc, signal.SIGKILL)
                proc.wait()
            return None
        finally:
            kill_group(proc, signal.SIGKILL)


def kill_group(proc: subprocess.Popen[Any], sig: int) -> None:
    """Signal a command started with start_new_session, and every child it left behind."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)


_default: CommandRunner | None = None


def default_runner() -> CommandRunner:
    """The process-wide real runner."""
    global _default
    if _default is None:
        _default = SubprocessRunner()
    return _default


# --- a scripted runner for tests -------------------------------------------------------------

class UnexpectedCommand(AssertionError):
    """FakeRunner got a command no rule matches."""


@dataclass
class _Rule:
    prefix: tuple[str, ...]
    results: list[tuple[int, str, str]]
    used: int = 0


@dataclass
class Call:
    argv: list[str]
    input: str | None
    env: dict[str, str] | None
    timeout: float


@dataclass
class FakeRunner(CommandRunner):
    """Replays scripted results keyed by argv prefix; records every call.

    ``on(prefix, stdout=..., stderr=..., rc=...)`` adds a rule; ``on(...)`` for the same
    prefix again queues a further result: results are used in order, the last one repeats.
    The longest matching prefix wins. A command that matches no rule raises
    ``UnexpectedCommand`` unless ``default`` is set (then it gets that result).
    """

    default: tuple[int, str, str] | None = None
    calls: list[Call] = field(default_factory=list)
    _rules: list[_Rule] = field(default_factory=list)

    def on(self, prefix: str | Iterable[str], stdout: str = "", stderr: str = "",
           rc: int = 0) -> FakeRunner:
        key = tuple(prefix.split()) if isinstance(prefix, str) else tuple(prefix)
        for rule in self._rules:
            if rule.prefix == key:
                rule.results.append((rc, stdout, stderr))
                return self
        self._rules.append(_Rule(key, [(rc, stdout, stderr)]))
        return self

    @property
    def argvs(self) -> list[list[str]]:
        return [call.argv for call in self.calls]

    def commands(self, name: str) -> list[list[str]]:
        """The calls of one program (argv[0])."""
        return [argv for argv in self.argvs if argv[0] == name]

    def _execute(self, argv: list[str], *, timeout: float, input: str | None,
                 env: Mapping[str, str] | None) -> Result:
        self.calls.append(Call(list(argv), input, dict(env) if env else None, timeout))
        best: _Rule | None = None
        for rule in self._rules:
            if tuple(argv[:len(rule.prefix)]) == rule.prefix and (
                    best is None or len(rule.prefix) > len(best.prefix)):
                best = rule
        if best is None:
            if self.default is None:
                raise UnexpectedCommand(f"unexpected command: {argv}")
            rc, out, err = self.default
        else:
            rc, out, err = best.results[min(best.used, len(best.results) - 1)]
            best.used += 1
        return Result(rc, out, err, tuple(argv))
