"""The CLI's side of the master socket: requests, job submission and log streaming.

Standard library only; the CLI must start fast.
"""

from __future__ import annotations

import _socket  # the C module: the socket.py wrapper costs the CLI ~1.5 ms
import json
import os
import sys
import time

from cardume import errors, paths

PROTOCOL_VERSION = 1
"""The "version" of cardume's requests: the master answers them in cardume's shapes (a
request without it is a Ganeti client's, such as htools: see master/luxi_ganeti.py)."""

TYPE_CHECKING = False  # `typing` costs every CLI start ~3 ms; only mypy needs it here
if TYPE_CHECKING:
    from typing import Any

EOM = b"\x03"
RAW_REPLY_PREFIX = b'{"success":true,"result":'
"""How a reply whose result is JSON text already begins (the master writes it so; the REST
daemon passes the text on without parsing it)."""


def master_socket_path(env: dict[str, str] | None = None) -> str:
    env = dict(os.environ) if env is None else env
    root = env.get(paths.ENV_ROOT)
    if root:
        master_dir = paths.find_master_dir(root)
        if master_dir is None:
            raise errors.NotCluster(f"no initialised cluster under {root}",
                                    f"start one with 'cardume vcluster up --root {root}'")
        return paths.NodePaths(master_dir).master_socket
    local = paths.NodePaths(paths.DEFAULT_STATE_DIR)
    ssconf = local.read_ssconf()
    if not ssconf:
        raise errors.NotCluster("this node is not part of a cluster",
                                "run 'gnt-cluster init' or 'gnt-node add' first")
    identity = local.read_identity()
    if ssconf.get("master_node") != identity.get("name"):
        raise errors.MasterUnreachable(
            f"this is not the master node; the master is {ssconf.get('master_node')}",
            "run the command there")
    return local.master_socket


# How long a command that waits across a master restart (gnt-debug submit-job) keeps
# trying to reach the master again before it gives up.
MASTER_RESTART_WAIT = 300.0


def permission_error(path: str, prog: str = "gnt-*") -> errors.EnvironmentProblem:
    """The one line for a user who may not open the master's socket or read this node's
    state (its keys, ssconf): who may, and the owner and mode of the path when visible."""
    seen = ""
    try:
        info = os.stat(path)
        import grp
        import pwd
        try:
            owner = pwd.getpwuid(info.st_uid).pw_name
        except KeyError:
            owner = str(info.st_uid)
        try:
            group = grp.getgrgid(info.st_gid).gr_name
        except KeyError:
            group = str(info.st_gid)
        seen = f" (owner {owner}, group {group}, mode {info.st_mode & 0o7777:04o})"
    except OSError:
        pass  # not even visible to this user: the path alone says where
    who = ("the gnt-* commands must run as root (or a user who may open the socket)"
           if prog.startswith("gnt-") else
           f"{prog} must run as root here (or as a user who may use that path)")
    return errors.EnvironmentProblem(f"permission denied on {path}{seen}: {who}")


class Client:
    def __init__(self, path: str | None = None, timeout: float = 120.0) -> None:
        self._follow_master = path is None  # a reconnect finds the master again
        self.path = path or master_socket_path()
        self._timeout = timeout
        self._sock = self._connect(self.path)
        self._buffer = b""

    def _connect(self, path: str) -> Any:
        sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
        sock.settimeout(self._timeout)
        try:
            sock.connect(path)
        except (FileNotFoundError, ConnectionRefusedError):
            sock.close()
            raise errors.MasterUnreachable(
                f"the master daemon does not answer at {path}",
                "is cardume-masterd running? ('cardume vcluster up' restarts a local "
                "cluster's daemons)") from None
        except PermissionError:
            sock.close()
            raise permission_error(path) from None
        return sock

    def reconnect(self, within: float) -> None:
        """Connect to the master again, trying for up to ``within`` seconds (it may be
        restarting); MasterUnreachable if it doesn't come back in time."""
        self._sock.close()
        self._buffer = b""
        deadline = time.monotonic() + within
        pause = 0.1
        while True:
            try:
                path = master_socket_path() if self._follow_master else self.path
                self._sock = self._connect(path)
                self.path = path
                return
            except (errors.MasterUnreachable, errors.NotCluster) as err:
                if time.monotonic() + pause > deadline:
                    raise errors.MasterUnreachable(
                        f"the master daemon did not come back within {within:.0f}s "
                        f"({err.message})") from None
            time.sleep(pause)  # a retry interval, not a wait for a condition
            pause = min(pause * 2, 2.0)

    def close(self) -> None:
        self._sock.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def call(self, method: str, *args: Any) -> Any:
        request = {"method": method, "args": list(args), "version": PROTOCOL_VERSION}
        try:
            self._sock.sendall(json.dumps(request, separators=(",", ":")).encode() + EOM)
            while EOM not in self._buffer:
                chunk = self._sock.recv(1 << 16)
                if not chunk:
                    raise errors.MasterUnreachable("the master daemon closed the connection")
                self._buffer += chunk
        except TimeoutError:
            raise errors.MasterUnreachable(f"the master daemon did not answer {method}") from None
        except OSError as err:
            raise errors.MasterUnreachable(f"lost the master daemon: {err}") from None
        raw, _, self._buffer = self._buffer.partition(EOM)
        reply = json.loads(raw)
        if not reply.get("success"):
            raise errors.from_dict(reply.get("result") or {})
        return reply.get("result")

    # --- jobs -----------------------------------------------------------------------------

    def submit(self, ops: list[dict[str, Any]]) -> int:
        return int(self.call("SubmitJob", ops))

    def wait_job(self, job_id: int, feedback: bool = True,
                 reconnect: float = 0.0) -> list[Any]:
        """Stream the job's log lines until it ends; its op results, or raise its error.

        With ``reconnect`` seconds, a lost master is waited for (a restart requeues the
        jobs that had not started, and they run then): the job's real outcome is reported,
        not the lost connection."""
        status: str | None = None
        serial = 0
        while True:
            try:
                change = self.call("WaitForJobChange", job_id, status, serial, 30.0)
            except errors.MasterUnreachable as err:
                hint = (f"job {job_id} may still run: 'gnt-job watch {job_id}' follows it "
                        "once the master daemon answers")
                if reconnect <= 0:
                    raise errors.MasterUnreachable(
                        f"{err.message} while waiting for job {job_id}", hint) from None
                print(f"Lost the master daemon while waiting for job {job_id}; waiting up to "
                      f"{reconnect:.0f}s for it to come back", file=sys.stderr, flush=True)
                try:
                    self.reconnect(reconnect)
                except errors.MasterUnreachable as lost:
                    raise errors.MasterUnreachable(lost.message, hint) from None
                continue
            if change == "nochange":
                continue
            status = change["status"]
            for entry_serial, timestamp, _kind, message in change["log"]:
                serial = max(serial, entry_serial)
                if feedback:
                    print(f"{time.ctime(timestamp)} {message}", flush=True)
            if "opresult" in change:
                return _job_outcome(job_id, status, change["opstatus"], change["opresult"])


def _job_outcome(job_id: int, status: str, opstatus: list[str],
                 opresult: list[Any]) -> list[Any]:
    if status == "success":
        return opresult
    if status == "canceled":
        raise errors.JobCanceled(f"job {job_id} was canceled")
    for op_status, result in zip(opstatus, opresult, strict=False):
        if op_status == "error" and isinstance(result, dict):
            raise errors.from_dict(result)
    raise errors.ExecError(f"job {job_id} ended with status {status}")
