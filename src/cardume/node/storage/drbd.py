"""The ``drbd`` template: a DRBD 8.4 network mirror over two LVs per node.

A disk is, on each of its two nodes, a data LV and a 128 MiB metadata LV (external meta
disk, index 0) made into ``/dev/drbdMINOR``, connected to the peer with protocol C and a
per-disk shared secret (``cram-hmac-alg sha1``). Its ``logical_id`` is Ganeti's
``[pnode, snode, port, pminor, sminor, secret]``; the master adds, per node, the dynamic
parameters ``{"local_ip", "remote_ip", "local_minor", "remote_minor"}`` (the nodes'
secondary IPs when set), and the two LVs as ``children``.

Every ``drbdsetup``/``drbdmeta`` command line is built by ``Drbd84Commands`` and nowhere
else, with the 8.4 syntax measured on the QA cluster (resource ``resourceMINOR``, volume 0):

    drbdsetup new-resource resource0
    drbdsetup new-minor resource0 0 0
    drbdmeta --force /dev/drbd0 v08 META 0 create-md          (once, at creation)
    drbdmeta /dev/drbd0 v08 META 0 apply-al                   (before each attach)
    drbdsetup attach 0 DATA META 0 --on-io-error=detach --size=Nm ...
    drbdsetup connect resource0 ipv4:L:P ipv4:R:P --protocol=C ... --shared-secret=S
    drbdsetup primary 0 [--force] | secondary 0 | detach 0 | resize 0 --size=Nm
    drbdsetup disconnect ipv4:L:P ipv4:R:P
    drbdsetup down resource0

A DRBD 9 variant subclasses it (``drbdsetup`` 9 names connections by peer node id and has
no ``/proc/drbd`` status: it would also need a ``drbdsetup status --json`` parser).

State comes from ``/proc/drbd`` (``parse_proc_drbd``), the file operators watch.
"""

from __future__ import annotations

import ipaddress
import os
import re
import shlex
import time
from collections.abc import Callable
from typing import Any

from cardume import errors
from cardume.node.cmd import CommandRunner, default_runner
from cardume.node.storage.base import BlockDev
from cardume.node.storage.lvm import LogicalVolume, LvmTool

META_SIZE = 128  # MiB, Ganeti's DRBD_META_SIZE
PROC_DRBD = "/proc/drbd"
DRBD_TIMEOUT = 60.0
MINOR_MAX = (1 << 20) - 1
HMAC_ALG = "sha1"
SECRET_MAX = 64  # SHARED_SECRET_MAX in DRBD 8.4
_SECRET_RE = re.compile(r"^[A-Za-z0-9+/=_.-]{1,64}$")

# --- /proc/drbd ------------------------------------------------------------------------------

CONNECTED_STATES = frozenset({
    "Connected", "StartingSyncS", "StartingSyncT", "WFBitMapS", "WFBitMapT", "WFSyncUUID",
    "SyncSource", "SyncTarget", "PausedSyncS", "PausedSyncT", "VerifyS", "VerifyT", "Ahead",
    "Behind"})
RESYNC_STATES = frozenset({
    "StartingSyncS", "StartingSyncT", "WFBitMapS", "WFBitMapT", "WFSyncUUID", "SyncSource",
    "SyncTarget", "PausedSyncS", "PausedSyncT"})

_MINOR_RE = re.compile(r"^\s*(\d+):\s+cs:(\S+)(.*)$")
_SYNC_RE = re.compile(r"(sync'ed|verified):\s*([\d.]+)%\s*\((\d+)/(\d+)\)([KM])")
_FINISH_RE = re.compile(r"finish:\s*(\d+):(\d+):(\d+)\s+speed:\s*([\d,]+)\s*\(([\d,]+)\)"
                        r"(?:\s*want:\s*([\d,]+))?")
_VERSION_RE = re.compile(r"^version:\s*(\d+)\.(\d+)\.(\d+)\S*(?:\s*\(api:(\d+)/proto:([\d-]+)\))?",
                         re.MULTILINE)
_IO_FLAGS_RE = re.compile(r"^[r-][a-z-]{4,}$")


def parse_version(text: str) -> dict[str, Any] | None:
    """``{"version": "8.4.11", "major", "minor", "patch", "api", "proto"}`` from /proc/drbd."""
    match = _VERSION_RE.search(text)
    if match is None:
        return None
    major, minor, patch = (int(match.group(i)) for i in (1, 2, 3))
    return {"version": f"{major}.{minor}.{patch}", "major": major, "minor": minor,
            "patch": patch, "api": int(match.group(4)) if match.group(4) else None,
            "proto": match.group(5)}


def _new_minor(minor: int, cstate: str) -> dict[str, Any]:
    return {"minor": minor, "cstate": cstate, "role": None, "peer_role": None, "disk": None,
            "peer_disk": None, "protocol": None, "io_flags": None, "counters": {},
            "oos_kib": None, "sync_percent": None, "sync_left_kib": None,
            "sync_total_kib": None, "sync_finish_s": None, "sync_speed_kib_s": None,
            "sync_speed_avg_kib_s": None, "sync_want_kib_s": None}


def _number(text: str) -> int:
    return int(text.replace(",", ""))


def _finish(status: dict[str, Any]) -> None:
    cstate = status["cstate"]
    status["configured"] = cstate != "Unconfigured"
    status["connected"] = cstate in CONNECTED_STATES
    status["resyncing"] = cstate in RESYNC_STATES
    status["local_uptodate"] = status["disk"] == "UpToDate"
    status["degraded"] = not (status["connected"] and status["disk"] == "UpToDate"
                              and status["peer_disk"] == "UpToDate")


def parse_proc_drbd(text: str) -> dict[int, dict[str, Any]]:
    """The minors /proc/drbd (DRBD 8.4 format) lists, each as a dict:

    ``minor, cstate, role, peer_role, disk, peer_disk, protocol, io_flags, counters``
    (ns, nr, dw, dr, al, bm, lo, pe, ua, ap, ep, oos as ints; wo as its letter),
    ``oos_kib``, and while a resync runs ``sync_percent, sync_left_kib, sync_total_kib,
    sync_finish_s, sync_speed_kib_s, sync_speed_avg_kib_s`` (else None); and derived flags
    ``configured, connected, resyncing, local_uptodate, degraded``.
    """
    minors: dict[int, dict[str, Any]] = {}
    current: dict[str, Any] | None = None
    for line in text.splitlines():
        match = _MINOR_RE.match(line)
        if match:
            current = _new_minor(int(match.group(1)), match.group(2))
            minors[current["minor"]] = current
            for token in match.group(3).split():
                if token.startswith(("ro:", "st:")) and "/" in token:
                    current["role"], current["peer_role"] = token[3:].split("/", 1)
                elif token.startswith("ds:") and "/" in token:
                    current["disk"], current["peer_disk"] = token[3:].split("/", 1)
                elif token in ("A", "B", "C"):
                    current["protocol"] = token
                elif _IO_FLAGS_RE.match(token):
                    current["io_flags"] = token
            continue
        if current is None:
            continue
        sync = _SYNC_RE.search(line)
        if sync:
            scale = 1024 if sync.group(5) == "M" else 1
            current["sync_percent"] = float(sync.group(2))
            current["sync_left_kib"] = int(sync.group(3)) * scale
            current["sync_total_kib"] = int(sync.group(4)) * scale
            continue
        finish = _FINISH_RE.search(line)
        if finish:
            hours, minutes, seconds = (int(finish.group(i)) for i in (1, 2, 3))
            current["sync_finish_s"] = hours * 3600 + minutes * 60 + seconds
            current["sync_speed_kib_s"] = _number(finish.group(4))
            current["sync_speed_avg_kib_s"] = _number(finish.group(5))
            if finish.group(6):
                current["sync_want_kib_s"] = _number(finish.group(6))
            continue
        if ":" in line and line.strip().startswith("ns:"):
            for token in line.split():
                key, _, value = token.partition(":")
                current["counters"][key] = int(value) if value.isdigit() else value
            oos = current["counters"].get("oos")
            current["oos_kib"] = oos if isinstance(oos, int) else None
    for status in minors.values():
        _finish(status)
    return minors


def read_proc_drbd(path: str = PROC_DRBD) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            return handle.read()
    except FileNotFoundError:
        raise errors.EnvironmentProblem(
            "DRBD is not loaded on this node (no /proc/drbd)",
            "modprobe drbd minor_count=128 usermode_helper=/bin/true") from None


# --- command construction --------------------------------------------------------------------

def address(ip: str, port: int) -> str:
    """``ipv4:1.2.3.4:11000`` or ``ipv6:[::1]:11000``, as drbdsetup wants it."""
    parsed = ipaddress.ip_address(ip)
    if parsed.version == 6:
        return f"ipv6:[{parsed}]:{port}"
    return f"ipv4:{parsed}:{port}"


def _barrier_args(disabled: str) -> list[str]:
    """Ganeti's ``disk-barriers`` letters: b (barriers), f (flushes), d (drain), n (none)."""
    disabled = disabled or "n"
    if disabled == "n":
        return []
    options = {"b": "--disk-barrier=no", "f": "--disk-flushes=no", "d": "--disk-drain=no"}
    if not set(disabled) <= set(options):
        raise errors.WrongInput(f"bad disk-barriers value '{disabled}': expected 'n' or "
                                "letters among 'bfd'")
    return [options[letter] for letter in "bfd" if letter in disabled]


def _custom(value: Any, what: str) -> list[str]:
    if not value:
        return []
    try:
        args = shlex.split(str(value))
    except ValueError as err:
        raise errors.WrongInput(f"bad {what} '{value}': {err}") from None
    for arg in args:
        if not arg.startswith("--"):
            raise errors.WrongInput(f"bad {what} '{value}': only --options are allowed")
    return args


class Drbd84Commands:
    """Every DRBD 8.4 command line, built in one place."""

    drbdsetup = "drbdsetup"
    drbdmeta = "drbdmeta"

    @staticmethod
    def resource(minor: int) -> str:
        return f"resource{minor}"

    @staticmethod
    def device(minor: int) -> str:
        return f"/dev/drbd{minor}"

    def new_resource(self, minor: int) -> list[str]:
        return [self.drbdsetup, "new-resource", self.resource(minor)]

    def new_minor(self, minor: int) -> list[str]:
        return [self.drbdsetup, "new-minor", self.resource(minor), str(minor), "0"]

    def create_md(self, minor: int, meta: str) -> list[str]:
        return [self.drbdmeta, "--force", self.device(minor), "v08", meta, "0", "create-md"]

    def apply_al(self, minor: int, meta: str) -> list[str]:
        return [self.drbdmeta, self.device(minor), "v08", meta, "0", "apply-al"]

    def attach(self, minor: int, data: str, meta: str, size_mb: int,
               params: dict[str, Any]) -> list[str]:
        argv = [self.drbdsetup, "attach", str(minor), data, meta, "0", "--on-io-error=detach"]
        if size_mb:
            argv.append(f"--size={size_mb}m")
        argv += _barrier_args(str(params.get("disk-barriers", "n")))
        if params.get("meta-barriers"):
            argv.append("--md-flushes=no")
        if params.get("dynamic-resync"):
            argv += [f"--c-plan-ahead={int(params.get('c-plan-ahead', 20))}",
                     f"--c-fill-target={int(params.get('c-fill-target', 0))}",
                     f"--c-delay-target={int(params.get('c-delay-target', 1))}",
                     f"--c-max-rate={int(params.get('c-max-rate', 61440))}",
                     f"--c-min-rate={int(params.get('c-min-rate', 4096))}"]
        else:  # a fixed rate: the dynamic controller (on by default in 8.4) would ignore it
            argv += ["--c-plan-ahead=0", f"--resync-rate={int(params.get('resync-rate', 61440))}"]
        return argv + _custom(params.get("disk-custom"), "disk-custom")

    def connect(self, minor: int, local: str, remote: str, *, protocol: str, secret: str,
                dual_primary: bool, params: dict[str, Any]) -> list[str]:
        argv = [self.drbdsetup, "connect", self.resource(minor), local, remote,
                f"--protocol={protocol}", "--after-sb-0pri=discard-zero-changes",
                "--after-sb-1pri=consensus", "--after-sb-2pri=disconnect",
                f"--cram-hmac-alg={HMAC_ALG}", f"--shared-secret={secret}"]
        if dual_primary:
            argv.append("--allow-two-primaries")
        return argv + _custom(params.get("net-custom"), "net-custom")

    def disconnect(self, minor: int, local: str, remote: str) -> list[str]:
        return [self.drbdsetup, "disconnect", local, remote]

    def primary(self, minor: int, force: bool) -> list[str]:
        return [self.drbdsetup, "primary", str(minor), *(["--force"] if force else [])]

    def secondary(self, minor: int) -> list[str]:
        return [self.drbdsetup, "secondary", str(minor)]

    def detach(self, minor: int) -> list[str]:
        return [self.drbdsetup, "detach", str(minor)]

    def down(self, minor: int) -> list[str]:
        return [self.drbdsetup, "down", self.resource(minor)]

    def resize(self, minor: int, size_mb: int) -> list[str]:
        return [self.drbdsetup, "resize", str(minor), f"--size={size_mb}m"]


# --- the block device ------------------------------------------------------------------------

def _int(value: Any, what: str, low: int, high: int) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise errors.WrongInput(f"bad DRBD {what} {value!r}") from None
    if isinstance(value, bool) or not low <= number <= high:
        raise errors.WrongInput(f"bad DRBD {what} {value!r}: expected {low} to {high}")
    return number


def _ip(value: Any, what: str) -> str:
    try:
        return str(ipaddress.ip_address(str(value)))
    except ValueError:
        raise errors.WrongInput(f"bad DRBD {what} {value!r}: not an IP address") from None


class DrbdDisk(BlockDev):
    def __init__(self, logical_id: list[Any], size: int, params: dict[str, Any], *,
                 data: LogicalVolume, meta: LogicalVolume, local_ip: str, remote_ip: str,
                 local_minor: int, runner: CommandRunner | None = None,
                 commands: Drbd84Commands | None = None,
                 read_proc: Callable[[], str] = read_proc_drbd,
                 sleep: Callable[[float], None] = time.sleep,
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(logical_id, size, params)
        if not isinstance(logical_id, list | tuple) or len(logical_id) != 6:
            raise errors.WrongInput(f"bad drbd disk id {logical_id!r}: expected [pnode, "
                                    "snode, port, pminor, sminor, secret]")
        self.port = _int(logical_id[2], "port", 1, 65535)
        secret = logical_id[5]
        if not isinstance(secret, str) or not _SECRET_RE.match(secret):
            raise errors.WrongInput("bad DRBD shared secret: expected 1 to "
                                    f"{SECRET_MAX} letters, digits or '+/=_.-'")
        self.secret = secret
        self.minor = _int(local_minor, "minor", 0, MINOR_MAX)
        self.local_ip, self.remote_ip = _ip(local_ip, "local IP"), _ip(remote_ip, "remote IP")
        if ipaddress.ip_address(self.local_ip).version != \
                ipaddress.ip_address(self.remote_ip).version:
            raise errors.WrongInput("DRBD peers must both use IPv4 or both IPv6")
        if self.local_ip == self.remote_ip:
            raise errors.WrongInput(f"DRBD local and remote address are the same "
                                    f"({self.local_ip})")
        self.protocol = str(params.get("protocol") or "C")
        if self.protocol not in ("A", "B", "C"):
            raise errors.WrongInput(f"bad DRBD protocol '{self.protocol}': expected A, B or C")
        if meta.size < META_SIZE:
            raise errors.WrongInput(f"DRBD metadata volume too small: {meta.size} MiB, at least "
                                    f"{META_SIZE} MiB needed")
        _barrier_args(str(params.get("disk-barriers", "n")))  # refuse bad values now,
        _custom(params.get("disk-custom"), "disk-custom")     # before any command runs
        _custom(params.get("net-custom"), "net-custom")
        self.data, self.meta = data, meta
        self.runner = runner or default_runner()
        self.cmds = commands or Drbd84Commands()
        self.read_proc = read_proc
        self.sleep, self.clock = sleep, clock

    @property
    def path(self) -> str:
        return self.cmds.device(self.minor)

    @property
    def local_address(self) -> str:
        return address(self.local_ip, self.port)

    @property
    def remote_address(self) -> str:
        return address(self.remote_ip, self.port)

    def _run(self, argv: list[str], input: str | None = None) -> None:
        self.runner.run(argv, timeout=DRBD_TIMEOUT, input=input)

    def proc_status(self) -> dict[str, Any] | None:
        """This minor's entry in /proc/drbd, or None when it is not configured."""
        return parse_proc_drbd(self.read_proc()).get(self.minor)

    # --- creation and removal ----------------------------------------------------------------

    def create(self, data_exists: bool = False) -> None:
        """Create the data and metadata LVs and initialise the metadata; on failure, remove
        whatever this call created. ``data_exists``: the data LV is there already, with
        data to keep (a plain disk becoming the primary side of a mirror)."""
        if self.size <= 0:
            raise errors.WrongInput(f"invalid disk size {self.size} MiB")
        if data_exists:
            if not self.data.exists():
                raise errors.WrongState(f"logical volume {self.data.lvm_name} does not exist "
                                        "on this node")
            self.meta.create()
            try:
                self._run(self.cmds.create_md(self.minor, self.meta.path), input="yes\nyes\n")
            except BaseException:
                self.meta.remove()
                raise
            return
        if self.data.vg == self.meta.vg:  # both must fit, not just each
            free = self.data.lvm.vg_info(self.data.vg)["free"]
            needed = self.data.size + self.meta.size
            if free < needed:
                raise errors.InsufficientResources(
                    f"not enough free space in volume group {self.data.vg} for a DRBD disk: "
                    f"{needed} MiB needed ({self.data.size} data + {self.meta.size} metadata),"
                    f" {free} MiB free", f"short by {needed - free} MiB")
        self.data.create()
        try:
            self.meta.create()
        except BaseException:
            self.data.remove()
            raise
        try:
            self._run(self.cmds.create_md(self.minor, self.meta.path), input="yes\nyes\n")
        except BaseException:
            self.meta.remove()
            self.data.remove()
            raise

    def remove(self) -> None:
        self.shutdown()
        self.data.remove()
        self.meta.remove()

    def exists(self) -> bool:
        return self.data.exists() and self.meta.exists()

    # --- bringing the device up and down ---------------------------------------------------

    def attach(self) -> None:
        """Set up the minor on its LVs (idempotent); on failure, take the minor down again."""
        status = self.proc_status()
        if status is not None and status["disk"] not in (None, "Diskless"):
            return
        self.data.assemble()
        self.meta.assemble()
        fresh = status is None
        try:
            if fresh:
                self._run(self.cmds.new_resource(self.minor))
                self._run(self.cmds.new_minor(self.minor))
            self._run(self.cmds.apply_al(self.minor, self.meta.path))
            self._run(self.cmds.attach(self.minor, self.data.path, self.meta.path, self.size,
                                       self.params))
        except BaseException:
            if fresh:
                self.runner.run(self.cmds.down(self.minor), timeout=DRBD_TIMEOUT, check=False)
            raise

    def connect(self, dual_primary: bool = False) -> None:
        """Connect to the peer (idempotent unless already connected with other options)."""
        status = self.proc_status()
        if status is None:
            raise errors.WrongState(f"DRBD minor {self.minor} is not set up on this node")
        if status["cstate"] != "StandAlone":
            return  # already connected, or waiting for the peer
        self._run(self.cmds.connect(self.minor, self.local_address, self.remote_address,
                                    protocol=self.protocol, secret=self.secret,
                                    dual_primary=dual_primary, params=self.params))

    def assemble(self) -> str:
        self.attach()
        self.connect()
        return self.path

    def primary(self, force: bool = False) -> None:
        """Make this side primary; ``force`` only for the initial sync source (it overwrites
        the peer) or when the peer is lost and this side is known to be the newest."""
        status = self.proc_status()
        if status is None:
            raise errors.WrongState(f"DRBD minor {self.minor} is not set up on this node")
        if status["role"] == "Primary" and not force:
            return
        self._run(self.cmds.primary(self.minor, force))

    def secondary(self) -> None:
        status = self.proc_status()
        if status is None or status["role"] == "Secondary":
            return
        self._run(self.cmds.secondary(self.minor))

    def disconnect(self) -> None:
        status = self.proc_status()
        if status is None or status["cstate"] == "StandAlone":
            return
        self._run(self.cmds.disconnect(self.minor, self.local_address, self.remote_address))

    def detach(self) -> None:
        status = self.proc_status()
        if status is None or status["disk"] in (None, "Diskless"):
            return
        self._run(self.cmds.detach(self.minor))

    def shutdown(self) -> None:
        """Take the minor down (disconnect and detach); the LVs stay."""
        if self.proc_status() is None:
            return
        self._run(self.cmds.down(self.minor))

    # --- replacing the local volumes (gnt-instance replace-disks -p/-s) ----------------------

    def replace_local(self, old_suffix: str, standalone: bool = False) -> list[list[str]]:
        """Put new, empty LVs under this side of the mirror and bring it up; DRBD then
        copies the peer's data onto them. The old LVs are renamed with ``old_suffix`` and
        kept (returned as [vg, lv] ids) until the caller has seen the sync end: if the peer
        dies meanwhile, they still hold this side's data. On failure, the old LVs go back.

        ``standalone``: this side stands alone (a split brain the admin resolves by
        dropping this side's changes): it is taken down instead of detached, and the
        caller, having checked the peer's disk itself, reconnects the peer afterwards."""
        status = self.proc_status()
        if status is not None and not status["connected"] and not standalone:
            raise errors.WrongState(
                f"DRBD minor {self.minor} is not connected to its peer "
                f"({status['cstate']}): replacing its local disk would leave no copy")
        if status is not None and status["connected"] and status["peer_disk"] != "UpToDate":
            raise errors.WrongState(
                f"the peer of DRBD minor {self.minor} is not up to date "
                f"({status['peer_disk']}): it can't be the source of the new disk")
        if status is not None and not status["connected"]:
            self.shutdown()
            status = None
        if status is not None:
            self.detach()
        old = [LogicalVolume([lv.vg, lv.name], lv.size, lv.params, tool=lv.lvm)
               for lv in (self.data, self.meta)]
        renamed: list[tuple[LogicalVolume, str]] = []
        try:
            for lv in old:
                if not lv.exists():  # lost with the failed disk: nothing to keep
                    continue
                original = lv.name
                lv.rename([lv.vg, f"{original}{old_suffix}"])
                renamed.append((lv, original))
            self.create()
        except BaseException:
            for lv, original in renamed:
                lv.rename([lv.vg, original])
            if status is not None:
                self.attach()
            raise
        self.attach()
        if status is None:
            self.connect()
        return [[lv.vg, lv.name] for lv, _ in renamed]

    # --- size --------------------------------------------------------------------------------

    def grow(self, amount: int) -> None:
        """Grow the data LV; run it on both nodes, then ``resize`` on the primary."""
        self.data.grow(amount)
        self.size += amount

    def resize(self) -> None:
        """Make the DRBD device use the grown LVs (both nodes must have grown them)."""
        self._run(self.cmds.resize(self.minor, self.size))

    def rename(self, new_id: list[Any]) -> None:
        raise errors.WrongInput("a DRBD disk can't be renamed (rename its volumes instead)")

    def actual_size(self) -> int:
        return self.data.actual_size()

    # --- state -------------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        exists = self.exists()
        return {"path": self.path, "exists": exists,
                "size": self.actual_size() if exists else None, "minor": self.minor,
                "drbd": self.proc_status()}

    def wait_for_sync(self, timeout: float, interval: float = 1.0) -> dict[str, Any]:
        """Wait until no resync runs and both disks are UpToDate; returns the final status.

        Raises WrongState when the minor is missing or stands alone (nothing will sync),
        ExecError with the progress when the time is up."""
        deadline = self.clock() + timeout
        while True:
            status = self.proc_status()
            if status is None:
                raise errors.WrongState(f"DRBD minor {self.minor} is not set up on this node")
            if status["cstate"] == "StandAlone":
                raise errors.WrongState(
                    f"DRBD minor {self.minor} is not connected to its peer (StandAlone)",
                    "a split brain or a refused connection: see the kernel log (dmesg)")
            if not status["resyncing"] and not status["degraded"]:
                return status
            if self.clock() >= deadline:
                done = status["sync_percent"]
                progress = f"{done:.1f}% synced" if done is not None else (
                    f"{status['cstate']} {status['disk']}/{status['peer_disk']}")
                raise errors.ExecError(f"DRBD minor {self.minor} did not finish syncing in "
                                       f"{timeout:g} s ({progress})")
            self.sleep(interval)


def from_spec(spec: dict[str, Any], identity: dict[str, Any], *,
              tool: LvmTool | None = None, **kwargs: Any) -> DrbdDisk:
    """A DrbdDisk from a DiskSpec: ``logical_id`` [pnode, snode, port, pminor, sminor,
    secret], ``children`` [data LV spec, meta LV spec], ``dynamic_params``
    {local_ip, remote_ip, local_minor, remote_minor}."""
    logical_id = list(spec.get("logical_id") or [])
    if len(logical_id) != 6:
        raise errors.WrongInput(f"bad drbd disk id {logical_id!r}: expected [pnode, snode, "
                                "port, pminor, sminor, secret]")
    children = spec.get("children") or []
    if len(children) != 2 or not all(isinstance(c, dict) for c in children):
        raise errors.WrongInput("a drbd disk spec needs two children: the data and the "
                                "metadata volume")
    dynamic = dict(spec.get("dynamic_params") or {})
    if "local_minor" not in dynamic:
        name = identity.get("name")
        if name == logical_id[0]:
            dynamic["local_minor"] = logical_id[3]
        elif name == logical_id[1]:
            dynamic["local_minor"] = logical_id[4]
        else:
            raise errors.WrongInput(f"this node ({name}) is not a node of the drbd disk "
                                    f"({logical_id[0]}, {logical_id[1]})")
    for key in ("local_ip", "remote_ip"):
        if not dynamic.get(key):
            raise errors.WrongInput(f"drbd disk spec lacks dynamic parameter '{key}'")
    tool = tool or LvmTool()
    data, meta = (LogicalVolume(list(c.get("logical_id") or []), int(c.get("size") or 0),
                                dict(c.get("params") or {}), tool=tool) for c in children)
    return DrbdDisk(logical_id, int(spec.get("size") or 0), dict(spec.get("params") or {}),
                    data=data, meta=meta, local_ip=dynamic["local_ip"],
                    remote_ip=dynamic["remote_ip"], local_minor=dynamic["local_minor"],
                    runner=tool.runner, **kwargs)


# --- split brain ---------------------------------------------------------------------------

KMSG = "/dev/kmsg"
# The kernel's DRBD 8.4 names a minor "drbd0" in device messages ("block drbd0: ...") and
# its resource ("resource0" here, see Drbd84Commands) in connection messages, e.g.
#   block drbd0: Split-Brain detected but unresolved, dropping connection!
#   block drbd0: Split-Brain detected, manually solved. Sync from this node
#   drbd resource0: conn( WFReportParams -> Connected ) ...
_MINOR_RE_KMSG = re.compile(r"\b(?:block drbd|drbd resource)(\d+): ")


def read_kmsg(path: str = KMSG) -> str:
    """The kernel log's records still in the ring buffer (without blocking), one per line;
    empty when it can't be read."""
    lines = []
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError:
        return ""
    try:
        while True:
            try:
                record = os.read(fd, 8192)
            except BlockingIOError:
                break
            except OSError:  # EPIPE: a record was overwritten while reading; go on
                continue
            if not record:
                break
            # "PRIO,SEQ,TIME,FLAGS;message" then optional " KEY=value" lines
            text = record.decode("utf-8", "replace").split(";", 1)[-1]
            lines.append(text.split("\n", 1)[0])
    finally:
        os.close(fd)
    return "\n".join(lines)


def split_brain_minors(kernel_log: str) -> set[int]:
    """Minors whose last connection attempt ended in an unresolved split brain (a later
    connection, or a split brain resolved by hand, clears it)."""
    last: dict[int, bool] = {}
    for line in kernel_log.splitlines():
        match = _MINOR_RE_KMSG.search(line)
        if match is None:
            continue
        if "Split-Brain detected but unresolved" in line:
            last[int(match.group(1))] = True
        elif "-> Connected )" in line or "Split-Brain detected, " in line:
            last[int(match.group(1))] = False
    return {minor for minor, split in last.items() if split}


def list_minors(read_proc: Callable[[], str] = read_proc_drbd) -> dict[int, dict[str, Any]]:
    """Every configured minor on this node (for ``gnt-node list-drbd``)."""
    try:
        text = read_proc()
    except errors.EnvironmentProblem:
        return {}
    return parse_proc_drbd(text)


__all__ = ["DrbdDisk", "Drbd84Commands", "META_SIZE", "address", "from_spec",
           "list_minors", "parse_proc_drbd", "parse_version", "read_kmsg",
           "split_brain_minors"]
