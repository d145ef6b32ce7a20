"""The ``kvm`` hypervisor: every instance is a ``qemu-system-x86_64`` process, driven
through QMP.

QEMU runs daemonized (``-daemonize -pidfile``), so it outlives the node daemon. What the
node needs to find an instance again is in its runtime file, ``STATE/hv/kvm/NAME.json``
(``STATE`` is the node's state directory)::

    {"name", "uuid", "pid", "started", "accel", "argv", "qmp", "serial", "pidfile",
     "serial_log", "vnc": {"address", "port", "display"} | null, "taps": [...], "chroot",
     "netns", "memory", "vcpus", "spec"}

Beside it, ``NAME.serial.log`` keeps what the guest wrote on its serial console since it
last started (QEMU writes it even when no console is attached).

``qmp`` and ``serial`` are unix sockets; they are in ``STATE/hv/kvm/run/`` when that path
is short enough for a socket address (107 bytes), else in ``/run/cardume-kvm/<hash of
STATE>/``, named by a hash of the instance name. An instance counts as running while its
pid is alive and is a QEMU whose ``-name`` is the instance's; one found dead (crashed,
killed, powered off by its guest) has its taps, sockets and runtime file removed, and is
reported as not running (the master shows ``ERROR_down`` when it should run).

Hypervisor parameters and how they become QEMU options: see kvm_cmdline; their checks
(the master's and this node's): rules/hvparams.

With ``CARDUME_KVM_NETNS=NS`` in the node daemon's environment, the taps and QEMU itself
live in network namespace NS (``ip netns exec``): the integration tests keep every network
change there.

Disks are the ``path`` of each disk in the spec (image files, LVs, DRBD devices), raw,
read-only for mode ``ro``. NICs are taps (see kvm_nics). The memory is ``-m maxmem``
(a virtio balloon is always there, so ``query-balloon`` reports the live size), the vCPUs
``-smp vcpus``.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import pwd
import signal
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

from cardume import constants, errors
from cardume.node.cmd import CommandRunner, default_runner, last_line
from cardume.node.hypervisor import kvm_nics
from cardume.node.hypervisor.base import Hypervisor, Spec
from cardume.node.hypervisor.kvm_cmdline import (
    QEMU,
    VNC_BASE,
    build_command,
    free_vnc_display,
    opt_value,
)
from cardume.node.hypervisor.qmp import QmpClient, QmpPerCommand
from cardume.rules import hvparams

log = logging.getLogger("cardume.noded")

NETNS_ENV = "CARDUME_KVM_NETNS"
SOCKET_MAX = 107
START_TIMEOUT = 60.0
USER_DOWN = constants.HV_STATE_USER_DOWN


# --- acceleration ------------------------------------------------------------------------------

_kvm_usable: bool | None = None


def kvm_usable(runner: CommandRunner | None = None) -> bool:
    """Whether hardware acceleration works here: /dev/kvm opens and creates a VM, and
    QEMU starts with ``-accel kvm`` without warning that the host lacks basic CPU features
    (nested setups that pass those checks but then fail guests). Probed once per process."""
    global _kvm_usable
    if _kvm_usable is None:
        _kvm_usable = _probe_kvm(runner or default_runner())
    return _kvm_usable


def _probe_kvm(runner: CommandRunner) -> bool:
    try:
        fd = os.open("/dev/kvm", os.O_RDWR | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        vm = fcntl.ioctl(fd, 0xAE01, 0)  # KVM_CREATE_VM
        os.close(vm)
    except OSError:
        return False
    finally:
        os.close(fd)
    try:
        result = runner.run([QEMU, "-accel", "kvm", "-machine", "pc", "-nodefaults",
                             "-no-user-config", "-display", "none", "-S", "-qmp", "stdio"],
                            input='{"execute": "qmp_capabilities"}\n{"execute": "quit"}\n',
                            timeout=20, check=False)
    except errors.CardumeError:
        return False
    text = result.stderr.lower()
    return result.ok and "doesn't support" not in text and "failed" not in text


# --- processes ----------------------------------------------------------------------------------

def _cmdline(pid: int) -> list[str]:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            raw = handle.read()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def _zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as handle:
            return handle.read().rpartition(")")[2].split()[:1] == ["Z"]
    except OSError:
        return True


def qemu_alive(pid: int, name: str) -> bool:
    """pid is a live QEMU started for instance name."""
    if pid <= 0 or _zombie(pid):
        return False
    argv = _cmdline(pid)
    if not argv or "qemu" not in os.path.basename(argv[0]):
        return False
    expected = f"{opt_value(name)},process=kvm:{opt_value(name)}"
    return any(a == "-name" and b == expected for a, b in zip(argv, argv[1:], strict=False))


def _wait_gone(pid: int, name: str, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while qemu_alive(pid, name):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)
    return True


def _process_uids() -> set[int]:
    """The real uids of the node's live processes (a zombie, such as a QEMU just killed and
    not yet reaped, holds nothing any more)."""
    found = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        with contextlib.suppress(OSError, ValueError, IndexError), \
                open(f"/proc/{entry}/status", encoding="ascii", errors="replace") as status:
            for line in status:
                if line.startswith("State:") and line.split()[1] in ("Z", "X"):
                    break
                if line.startswith("Uid:"):
                    found.add(int(line.split()[1]))
                    break
    return found


class KvmHypervisor(Hypervisor):
    NAME = "kvm"
    CAN_MIGRATE = True

    def __init__(self, state_dir: str, runner: CommandRunner | None = None,
                 netns: str | None = None) -> None:
        self.dir = state_dir
        os.makedirs(self.dir, exist_ok=True)
        self.runner = runner or default_runner()
        self.netns = (netns if netns is not None else os.environ.get(NETNS_ENV)) or None
        self.taps = kvm_nics.TapManager(self.runner, self.netns)
        self._locks: dict[str, threading.Lock] = {}
        self._locks_guard = threading.Lock()
        # uids chosen from the pool by starts still under way (not yet in a runtime file)
        self._pending_uids: set[int] = set()
        self._uid_guard = threading.Lock()
        self.sock_dir = self._socket_dir()

    # --- files ------------------------------------------------------------------------------

    def _socket_dir(self) -> str:
        local = os.path.join(self.dir, "run")
        if len(local) + 1 + 16 + len(".serial") <= SOCKET_MAX:
            return local
        digest = hashlib.sha256(os.path.abspath(self.dir).encode()).hexdigest()[:16]
        return os.path.join("/run/cardume-kvm", digest)

    def _check_name(self, name: str) -> str:
        if not isinstance(name, str) or not name or "/" in name or "\0" in name \
                or name.startswith("."):
            raise errors.WrongInput(f"invalid instance name {name!r}")
        return name

    def runtime_path(self, name: str) -> str:
        return os.path.join(self.dir, f"{self._check_name(name)}.json")

    def serial_log_path(self, name: str) -> str:
        """Everything the guest wrote on its serial console since it last started (kept
        after it stops, for a look at why it did)."""
        return os.path.join(self.dir, f"{self._check_name(name)}.serial.log")

    def _files(self, name: str) -> dict[str, str]:
        key = hashlib.sha256(name.encode()).hexdigest()[:16]
        base = os.path.join(self.sock_dir, key)
        return {"qmp": f"{base}.qmp", "serial": f"{base}.serial", "pidfile": f"{base}.pid",
                "chroot": f"{base}.chroot"}

    def read_runtime(self, name: str) -> dict[str, Any] | None:
        try:
            with open(self.runtime_path(name), encoding="utf-8") as handle:
                data: dict[str, Any] = json.load(handle)
                return data
        except (FileNotFoundError, ValueError):
            return None

    def _write_runtime(self, name: str, data: dict[str, Any]) -> None:
        path = self.runtime_path(name)
        tmp = f"{path}.tmp{os.getpid()}.{threading.get_ident()}"
        # root only: the spec it keeps may hold secrets (a DRBD disk's shared secret)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(data, handle, indent=1)
        os.replace(tmp, path)

    @contextlib.contextmanager
    def _lock(self, name: str) -> Iterator[None]:
        with self._locks_guard:
            lock = self._locks.setdefault(name, threading.Lock())
        with lock:
            yield

    def _running(self, name: str) -> dict[str, Any] | None:
        """The runtime of an instance that runs here (not one waiting for a migration)."""
        runtime = self._live_runtime(name)
        return None if runtime is None or runtime.get("incoming") else runtime

    def _alive(self, runtime: dict[str, Any]) -> bool:
        return qemu_alive(int(runtime.get("pid") or 0), str(runtime.get("name")))

    def _cleanup(self, name: str, runtime: dict[str, Any] | None) -> None:
        """Remove what a stopped (or dead) instance leaves: taps, sockets, runtime file."""
        files = self._files(name)
        if runtime:
            netns = runtime.get("netns", self.netns) or None
            taps = self.taps if netns == self.netns else kvm_nics.TapManager(self.runner,
                                                                             netns)
            taps.remove(list(runtime.get("taps") or []))
        for key in ("qmp", "serial", "pidfile"):
            with contextlib.suppress(FileNotFoundError):
                os.unlink((runtime or {}).get(key) or files[key])
        with contextlib.suppress(OSError):
            os.rmdir(files["chroot"])
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.runtime_path(name))

    def _live_runtime(self, name: str) -> dict[str, Any] | None:
        """The runtime of a running instance; a dead one is cleaned up (None)."""
        runtime = self.read_runtime(name)
        if runtime is None:
            return None
        if self._alive(runtime):
            return runtime
        with self._lock(name):
            runtime = self.read_runtime(name)
            if runtime is None or self._alive(runtime):
                return runtime
            self._cleanup(name, runtime)
        return None

    def qmp(self, name: str, timeout: float = 10.0) -> QmpClient:
        """A connected QMP client of a running instance (close it when done)."""
        runtime = self._live_runtime(name)
        if runtime is None:
            raise errors.WrongState(f"instance {name} is not running on this node")
        return QmpClient(runtime["qmp"], timeout).connect()

    def serial_socket(self, name: str) -> str:
        """The unix socket of a running instance's serial console."""
        runtime = self._live_runtime(name)
        if runtime is None:
            raise errors.WrongState(f"instance {name} is not running on this node")
        if not runtime.get("serial"):
            raise errors.WrongState(f"instance {name} has no serial console",
                                    "set -H kvm:serial_console=true and restart it")
        return str(runtime["serial"])

    # --- the interface -------------------------------------------------------------------------

    def _names(self) -> list[str]:
        """The instances that have a runtime file here (running or not)."""
        try:
            entries = os.listdir(self.dir)
        except FileNotFoundError:
            return []
        return [e[:-5] for e in sorted(entries) if e.endswith(".json") and not e.startswith(".")]

    def list_instances(self) -> list[str]:
        """Running instances: not a QEMU waiting after its guest powered off (user_down)."""
        found = []
        for name in self._names():
            runtime = self._running(name)
            if runtime is not None and not self._user_down(runtime):
                found.append(name)
        return found

    def all_instances_info(self) -> dict[str, dict[str, Any]]:
        """instance_info of every QEMU here, user_down ones included (they hold memory)."""
        found = {}
        for name in self._names():
            info = self.instance_info(name)
            if info is not None:
                found[name] = info
        return found

    @staticmethod
    def _user_down(runtime: dict[str, Any]) -> bool:
        """The guest powered itself off and its QEMU, started with -no-shutdown
        (user_shutdown), waits: down by the user's hand, not crashed."""
        if "-no-shutdown" not in (runtime.get("argv") or []):
            return False  # without it QEMU exits when the guest powers off
        try:
            with QmpClient(runtime["qmp"], timeout=2.0).connect() as qmp:
                return (qmp.execute("query-status") or {}).get("status") == "shutdown"
        except errors.ExecError:
            return False

    def list_incoming(self) -> list[str]:
        found = []
        for name in self._names():
            runtime = self.read_runtime(name)
            if runtime and runtime.get("incoming") and self._alive(runtime):
                found.append(name)
        return found

    def instance_info(self, name: str) -> dict[str, Any] | None:
        runtime = self._running(name)
        if runtime is None:
            return None
        info: dict[str, Any] = {"state": "running", "memory": int(runtime.get("memory", 0)),
                                "vcpus": int(runtime.get("vcpus", 0)),
                                "started": runtime.get("started")}
        if runtime.get("vnc"):
            vnc = runtime["vnc"]
            info["vnc"] = f"{vnc['address']}:{vnc['port']}"
        try:
            with QmpClient(runtime["qmp"], timeout=2.0).connect() as qmp:
                status = qmp.execute("query-status") or {}
                if status.get("status") not in (None, "running"):
                    info["qemu_status"] = status.get("status")
                waits = "-no-shutdown" in (runtime.get("argv") or [])
                if status.get("status") == "shutdown" and waits:
                    info["state"] = USER_DOWN
                with contextlib.suppress(errors.ExecError):
                    balloon = qmp.execute("query-balloon") or {}
                    if balloon.get("actual"):
                        info["memory"] = int(balloon["actual"]) // (1024 * 1024)
                with contextlib.suppress(errors.ExecError):
                    info["vcpus"] = len(qmp.execute("query-cpus-fast") or []) or info["vcpus"]
        except errors.ExecError:
            pass  # QEMU busy (migrating, or hung): the configured values stand
        return info

    def start(self, spec: Spec, extra: list[str] | None = None,
              incoming: bool = False) -> None:
        """Start the instance (with extra QEMU arguments; incoming: as a migration target,
        not listed as running until finalize_migration_target)."""
        name = self._check_name(spec["name"])
        with self._lock(name):
            runtime = self.read_runtime(name)
            if runtime is not None:
                if self._alive(runtime):
                    raise errors.WrongState(f"instance {name} is already running on this "
                                            "node")
                self._cleanup(name, runtime)
            self._start(spec, extra or [], incoming)

    def _start(self, spec: Spec, extra: list[str], incoming: bool) -> None:
        name = spec["name"]
        hv = dict(spec.get("hvparams") or {})
        hvparams.check(constants.HT_KVM, hv)
        for key in ("kernel_path", "initrd_path", "cdrom_image_path"):
            if hv.get(key) and not os.path.isfile(str(hv[key])):
                raise errors.WrongInput(f"instance {name}: {key} {hv[key]} does not exist on "
                                        "this node")
        for index, disk in enumerate(spec.get("disks") or []):
            path = disk.get("path")
            if not path or not os.path.exists(str(path)):
                raise errors.WrongInput(f"instance {name}, disk {index}: {path} does not "
                                        "exist on this node")
        nics = kvm_nics.plan(name, list(spec.get("nics") or []),
                             str(hv.get("nic_type") or "paravirtual"), salt=self.dir)
        files = self._files(name)
        os.makedirs(self.sock_dir, mode=0o700, exist_ok=True)
        for key in ("qmp", "serial", "pidfile"):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(files[key])
        flag = hv.get("kvm_flag") or ""
        accel = {"enabled": "kvm", "disabled": "tcg"}.get(flag) or (
            "kvm" if kvm_usable(self.runner) else "tcg")
        vnc = None
        if hv.get("vnc_bind_address"):
            address = str(hv["vnc_bind_address"])
            display = free_vnc_display(address, self._vnc_taken())
            vnc = {"address": address, "display": display, "port": VNC_BASE + display}
        chroot = None
        if hv.get("use_chroot"):
            chroot = files["chroot"]
            os.makedirs(chroot, mode=0o755, exist_ok=True)
        serial = files["serial"] if hv.get("serial_console", True) else None
        serial_log = self.serial_log_path(name) if serial else None
        runas, uid = self._runas(spec)
        argv = build_command(spec, qmp=files["qmp"], serial=serial, pidfile=files["pidfile"],
                             accel=accel, nics=nics, vnc=vnc, chroot=chroot, extra=extra,
                             serial_log=serial_log, runas=runas)
        runtime = {"name": name, "uuid": spec.get("uuid"), "pid": 0, "started": time.time(),
                   "accel": accel, "argv": argv, "qmp": files["qmp"], "serial": serial,
                   "pidfile": files["pidfile"], "serial_log": serial_log, "vnc": vnc,
                   "chroot": chroot, "uid": uid,
                   "taps": [n["tap"] for n in nics], "netns": self.netns,
                   "memory": int((spec.get("beparams") or {}).get("maxmem", 0)),
                   "vcpus": int((spec.get("beparams") or {}).get("vcpus", 0)),
                   "incoming": incoming, "spec": spec}
        try:
            self.taps.setup(nics)
        except BaseException:
            self._release_uid(uid)
            raise
        try:
            result = self.runner.run(kvm_nics.in_netns(argv, self.netns),
                                     timeout=START_TIMEOUT, check=False)
            pid = self._read_pid(files["pidfile"])
            if not result.ok or pid is None or not qemu_alive(pid, name):
                if pid is not None:
                    self._kill(pid, name)
                reason = last_line(result.stderr) or last_line(result.stdout) or (
                    f"exit code {result.rc}" if not result.ok else "QEMU exited at once")
                raise errors.ExecError(f"instance {name}: QEMU failed to start: "
                                       f"{reason.removeprefix(QEMU + ': ')}")
            runtime["pid"] = pid
            self._write_runtime(name, runtime)
        except BaseException:
            self._cleanup(name, runtime)
            raise
        finally:
            self._release_uid(uid)

    # --- security_model: the user QEMU runs as ------------------------------------------------

    def _runas(self, spec: Spec) -> tuple[str | None, int | None]:
        """QEMU's -runas value and the uid it means (None, None: stays root)."""
        hv = spec.get("hvparams") or {}
        name = spec["name"]
        model = hv.get("security_model") or "none"
        if model == "user":
            domain = str(hv.get("security_domain") or "")
            try:
                return domain, pwd.getpwnam(domain).pw_uid
            except KeyError:
                raise errors.WrongInput(f"instance {name}: kvm:security_domain user {domain!r} "
                                        "does not exist on this node") from None
        if model == "pool":
            uid = self._pool_uid(name, spec.get("uid_pool") or [])
            return f"{uid}:{uid}", uid
        return None, None

    def _pool_uid(self, name: str, pool: list[list[int]]) -> int:
        """A uid of the cluster's pool that no other instance holds and no process of this
        node runs as (a uid in use by anything else would share its files and signals)."""
        from cardume import uidpool
        if not pool:
            raise errors.WrongInput(f"instance {name}: security_model=pool, but the cluster's "
                                    "uid pool is empty",
                                    "gnt-cluster modify --uid-pool LOW-HIGH")
        with self._uid_guard:
            taken = set(self._pending_uids)
            for other in self.list_instances():
                runtime = self._live_runtime(other) if other != name else None
                if runtime and isinstance(runtime.get("uid"), int):
                    taken.add(runtime["uid"])
            taken |= _process_uids()
            for uid in uidpool.uids(pool):
                if uid not in taken:
                    self._pending_uids.add(uid)
                    return uid
        raise errors.InsufficientResources(
            f"instance {name}: every uid of the uid pool ({uidpool.format_pool(pool)}) is in "
            "use on this node", "gnt-cluster modify --add-uids LOW-HIGH")

    def _release_uid(self, uid: int | None) -> None:
        with self._uid_guard:
            self._pending_uids.discard(uid)

    def _vnc_taken(self) -> set[int]:
        taken = set()
        for name in self.list_instances():
            runtime = self.read_runtime(name) or {}
            if runtime.get("vnc"):
                taken.add(int(runtime["vnc"]["display"]))
        return taken

    @staticmethod
    def _read_pid(pidfile: str) -> int | None:
        try:
            with open(pidfile, encoding="ascii") as handle:
                return int(handle.read().strip())
        except (OSError, ValueError):
            return None

    @staticmethod
    def _kill(pid: int, name: str, timeout: float = 10.0) -> None:
        if qemu_alive(pid, name):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            _wait_gone(pid, name, timeout)

    def stop(self, name: str, timeout: float, force: bool) -> None:
        """ACPI power button, wait up to timeout, then quit (SIGKILL if QEMU hangs)."""
        with self._lock(name):
            runtime = self.read_runtime(name)
            if runtime is None:
                return
            pid = int(runtime.get("pid") or 0)
            if self._alive(runtime):
                # a guest already powered off (user_down) has no button left to press
                quick = force or self._user_down(runtime)
                self._stop_process(runtime, pid, name, 0.0 if quick else timeout)
            self._cleanup(name, runtime)

    def _stop_process(self, runtime: dict[str, Any], pid: int, name: str,
                      timeout: float) -> None:
        if timeout > 0:
            try:
                with QmpClient(runtime["qmp"], timeout=5.0).connect() as qmp:
                    qmp.execute("system_powerdown")
            except errors.ExecError:
                pass
            if _wait_gone(pid, name, timeout):
                return
        try:
            with QmpClient(runtime["qmp"], timeout=5.0).connect() as qmp:
                qmp.execute("quit")
        except errors.ExecError:
            pass
        if not _wait_gone(pid, name, 5.0):
            self._kill(pid, name)

    def reboot(self, name: str) -> None:
        runtime = self._live_runtime(name)
        if runtime is None:
            raise errors.WrongState(f"instance {name} is not running, so it can't reboot")
        with QmpClient(runtime["qmp"]).connect() as qmp:
            qmp.execute("system_reset")
        runtime["started"] = time.time()
        with self._lock(name):
            self._write_runtime(name, runtime)

    # --- migration (the steps are in kvm_migrate) --------------------------------------------

    def _node_address(self) -> str:
        """The address this node daemon listens on (node.json beside hv/kvm)."""
        from cardume.paths import NodePaths
        root = os.path.dirname(os.path.dirname(os.path.abspath(self.dir)))
        return str(NodePaths(root).read_identity().get("address") or "")

    @staticmethod
    def _check_port_free(host: str, port: int, what: str) -> None:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((host or "0.0.0.0", port))
            except OSError as err:
                raise errors.EnvironmentProblem(
                    f"the {what} port {port} on {host or '*'} is not free: "
                    f"{err.strerror or err}",
                    "another migration running? change kvm:migration_port") from None

    def accept_instance(self, spec: Spec, source: str) -> dict[str, Any]:
        from cardume.node.hypervisor import kvm_migrate
        name = self._check_name(spec["name"])
        if self._live_runtime(name) is not None:
            raise errors.WrongState(f"instance {name} already runs on the target")
        hv = spec.get("hvparams") or {}
        port = int(hv.get("migration_port") or 8102)
        host = self._node_address() or "0.0.0.0"
        mirror = bool(spec.get(kvm_migrate.MIRROR_PARAM))
        self._check_port_free(host, port, "migration")
        if mirror:
            self._check_port_free(host, port + 1, "disk mirror (NBD)")
        self.start(spec, extra=kvm_migrate.incoming_args(), incoming=True)
        try:
            with self.qmp(name) as qmp:
                disks = [{"device": f"disk{i}"} for i in range(len(spec.get("disks") or []))]
                return kvm_migrate.accept(qmp, listen_host=host, port=port,
                                          mirror_disks=disks if mirror else None)
        except BaseException:
            self.stop(name, 0, True)
            raise

    def migrate(self, name: str, target: str, info: dict[str, Any], live: bool,
                hvparams: dict[str, Any] | None = None) -> None:
        from cardume.node.hypervisor import kvm_migrate
        runtime = self._running(name)
        if runtime is None:
            raise errors.WrongState(f"instance {name} is not running, so it can't migrate")
        # the settings as they are now (a bandwidth raised for this migration counts)
        hv = hvparams or (runtime.get("spec") or {}).get("hvparams") or {}
        if str(info.get("host") or "0.0.0.0") in ("0.0.0.0", "::"):
            info = dict(info, host=target)
        # a connection per command: QMP stays free meanwhile (for migrate --cleanup)
        qmp = QmpPerCommand(str(runtime["qmp"]), timeout=60.0)
        result = kvm_migrate.migrate(
            qmp, info, live=live, downtime_ms=int(hv.get("migration_downtime") or 30),
            bandwidth_mib=int(hv.get("migration_bandwidth") or 32),
            mirror=bool(info.get("exports")))
        log.info("instance %s migrated to %s: %s", name, target,
                 ", ".join(f"{k}={v}" for k, v in result.items()))

    def finalize_migration_target(self, spec: Spec, success: bool) -> None:
        from cardume.node.hypervisor import kvm_migrate
        name = self._check_name(spec["name"])
        runtime = self._live_runtime(name)
        if not success:
            if runtime is not None and runtime.get("incoming"):
                self.stop(name, 0, True)
            return
        if runtime is None:
            raise errors.WrongState(f"instance {name} is not running on the target")
        with self.qmp(name, timeout=30.0) as qmp:
            kvm_migrate.finalize_target(qmp, True)
        with self._lock(name):
            runtime["incoming"] = False
            runtime["started"] = time.time()
            self._write_runtime(name, runtime)

    def finalize_migration_source(self, name: str, success: bool) -> None:
        from cardume.node.hypervisor import kvm_migrate
        if self._live_runtime(name) is None:
            return
        with self.qmp(name, timeout=30.0) as qmp:
            kvm_migrate.finalize_source(qmp, success)
        if success:
            self.stop(name, 0, True)

    # --- gnt-instance migrate --cleanup (the decision is the master's: rules/migration) ----

    def migration_state(self, name: str, role: str) -> str:
        """This side of an interrupted migration, as kvm_migrate.side_state classifies it."""
        from cardume.node.hypervisor import kvm_migrate
        from cardume.rules.migration import ABSENT
        name = self._check_name(name)
        if self._live_runtime(name) is None:
            return ABSENT
        problem = "it does not answer"
        try:
            with self.qmp(name, timeout=10.0) as qmp:
                state = kvm_migrate.side_state(qmp, role)
        except errors.CardumeError as err:
            state, problem = ABSENT, err.message
        runtime = self._live_runtime(name)
        if state == ABSENT and runtime is not None:
            # Absent would let the master hand the instance to the other side while this
            # QEMU lives, and may run the guest: a second copy. Unknown is not absent.
            raise errors.WrongState(
                f"the QEMU of instance {name} (pid {runtime.get('pid')}) runs on this node "
                f"but its state can't be read over QMP: {problem}",
                "try again; if it hangs, kill that process and run --cleanup again")
        return state

    def migration_cleanup(self, name: str, role: str, action: str | None) -> None:
        """Carry out this side's part of the master's cleanup plan."""
        from cardume.node.hypervisor import kvm_migrate
        from cardume.rules.migration import KILL, LEAVE, QUIT
        name = self._check_name(name)
        runtime = self._live_runtime(name)
        if runtime is None or action in (None, LEAVE):
            return
        if action in (QUIT, KILL):
            self.stop(name, 0, True)
            return
        with self.qmp(name, timeout=30.0) as qmp:
            if role == "source":
                kvm_migrate.cleanup_source(qmp, action)
            else:
                kvm_migrate.cleanup_target(qmp, action)
        if role == "target":  # it keeps the instance now: a normal running instance
            with self._lock(name):
                runtime["incoming"] = False
                self._write_runtime(name, runtime)

    def verify(self) -> list[str]:
        try:
            self.runner.run([QEMU, "--version"], timeout=20)
        except errors.CardumeError as err:
            return [f"kvm: {err.message}"]
        return []
