"""The ``plain`` template: LVM2 logical volumes, and the node's LVM inventory.

``logical_id`` is ``[vg, lv_name]``, as in Ganeti; the device is ``/dev/VG/LV``. Every name
is checked before any command runs: VG and LV names use only ``[A-Za-z0-9+_.-]``, never start
with ``-``, are never ``.`` or ``..``, and LV names avoid the prefixes and infixes LVM
reserves for its internal volumes (rules/volumes.py: the master checks names with the same
rules before it sends a call).

LVM pitfalls handled here (see the QA cluster report):

* **No prompts.** ``lvcreate --yes --wipesignatures n``: an old filesystem signature at the
  start of a recycled extent would otherwise make lvcreate ask before wiping it.
* **udev.** Without a running udevd, LVM waits for udev to create ``/dev/VG/LV`` and fails
  with "device not cleared / Failed to wipe start of new LV". When ``/run/udev/control`` is
  absent, every command gets ``--config`` settings that make LVM create its device nodes
  itself (``udev_sync=0 udev_rules=0 verify_udev_operations=0``).
* **Scanning.** LVM must not look inside DRBD devices or inside LVs (an instance that uses
  LVM in its own disk would otherwise show its volume groups on the host, or duplicate
  PVs): ``devices { global_filter = [ "r|^/dev/drbd[0-9]+$|" ] scan_lvs = 0 }``.
  ``LvmTool(config=...)`` replaces these settings when a node needs its own.
* **Parsing.** ``--noheadings --units m --nosuffix --separator |`` under ``LC_ALL=C``:
  stable columns (an orphan PV has an empty VG column) and ``.`` as the decimal point.
* **Warnings.** LVM ends many messages with "WARNING: This metadata update is NOT backed
  up"; errors report the last line that is not a warning.
"""

from __future__ import annotations

import os
from typing import Any

from cardume import errors
from cardume.node.cmd import CommandRunner, Result, default_runner, failure
from cardume.node.storage.base import BlockDev
from cardume.rules.volumes import check_lv_name, check_name

LVM_TIMEOUT = 120.0
SEP = "|"
UDEV_CONTROL = "/run/udev/control"

_SCAN = 'global_filter = [ "r|^/dev/drbd[0-9]+$|" ] scan_lvs = 0'
SCAN_CONFIG = f"devices {{ {_SCAN} }}"
NO_UDEV_CONFIG = (f"devices {{ {_SCAN} obtain_device_list_from_udev = 0 }} "
                  "activation { udev_sync = 0 udev_rules = 0 verify_udev_operations = 0 }")

_NOT_FOUND_LV = ("failed to find logical volume",)
_NOT_FOUND_VG = ("volume group", "not found")


def parse_id(logical_id: Any) -> tuple[str, str]:
    if not isinstance(logical_id, list | tuple) or len(logical_id) != 2:
        raise errors.WrongInput(f"bad plain disk id {logical_id!r}: expected [vg, lv_name]")
    return check_name(logical_id[0], "volume group"), check_lv_name(logical_id[1])


def mib(value: str) -> int:
    """An LVM size printed with --units m --nosuffix ('1020.00') as whole MiB (rounded down)."""
    try:
        return int(float(value.strip()))
    except ValueError:
        raise errors.ExecError(f"unexpected size {value!r} in LVM output") from None


def _rows(text: str, columns: int) -> list[list[str]]:
    rows = []
    for line in text.splitlines():
        if not line.strip():
            continue
        fields = [f.strip() for f in line.strip().split(SEP)]
        if len(fields) != columns:
            raise errors.ExecError(f"unexpected LVM output line {line.strip()!r}: expected "
                                   f"{columns} columns")
        rows.append(fields)
    return rows


class LvmTool:
    """Builds and runs LVM commands with the node's settings."""

    def __init__(self, runner: CommandRunner | None = None, *, udev: bool | None = None,
                 config: str | None = None) -> None:
        self.runner = runner or default_runner()
        if udev is None:
            udev = os.path.exists(UDEV_CONTROL)
        self.udev = udev
        if config is None:
            config = SCAN_CONFIG if udev else NO_UDEV_CONFIG
        self.config = config

    def argv(self, command: str, *args: str) -> list[str]:
        base = [command]
        if self.config:
            base += ["--config", self.config]
        return [*base, *args]

    def run(self, command: str, *args: str, check: bool = True) -> Result:
        return self.runner.run(self.argv(command, *args), timeout=LVM_TIMEOUT, check=check)

    def report(self, command: str, fields: list[str], *targets: str) -> list[list[str]]:
        result = self.run(command, "--noheadings", "--units", "m", "--nosuffix",
                          f"--separator={SEP}", "-o", ",".join(fields), *targets)
        return _rows(result.stdout, len(fields))

    # --- volume groups and physical volumes ------------------------------------------------

    def vg_info(self, vg: str) -> dict[str, int]:
        check_name(vg, "volume group")
        result = self.run("vgs", "--noheadings", "--units", "m", "--nosuffix",
                          f"--separator={SEP}", "-o", "vg_name,vg_size,vg_free", vg,
                          check=False)
        if not result.ok:
            if _is_vg_missing(result):
                raise errors.WrongState(f"volume group '{vg}' does not exist on this node",
                                        "create it with vgcreate, or name another with "
                                        "--vg-name")
            raise failure(result)
        rows = _rows(result.stdout, 3)
        for name, size, free in rows:
            if name == vg:
                return {"total": mib(size), "free": mib(free)}
        raise errors.WrongState(f"volume group '{vg}' does not exist on this node")

    def list_vgs(self) -> list[dict[str, Any]]:
        return [{"name": name, "size": mib(size), "free": mib(free)}
                for name, size, free in self.report("vgs", ["vg_name", "vg_size", "vg_free"])]

    def list_volumes(self, vg: str | None = None) -> list[dict[str, Any]]:
        """Every LV (of one VG): ``{"vg", "name", "size", "attr"}``, size in MiB."""
        targets = [check_name(vg, "volume group")] if vg else []
        rows = self.report("lvs", ["vg_name", "lv_name", "lv_size", "lv_attr"], *targets)
        return [{"vg": v, "name": n, "size": mib(s), "attr": a} for v, n, s, a in rows]

    def list_volume_devices(self, vg: str | None = None) -> list[dict[str, Any]]:
        """Every LV (of one VG) with the PVs it lies on, one row per PV (gnt-node volumes):
        ``{"vg", "name", "size", "dev"}``."""
        targets = [check_name(vg, "volume group")] if vg else []
        fields = ["vg_name", "lv_name", "lv_size", "devices"]
        found = self.run("lvs", "--noheadings", "--units", "m", "--nosuffix",
                         f"--separator={SEP}", "-o", ",".join(fields), *targets, check=False)
        if not found.ok:
            if vg and _is_vg_missing(found):
                raise errors.WrongState(f"volume group '{vg}' does not exist on this node")
            raise failure(found)
        rows = _rows(found.stdout, len(fields))
        result: list[dict[str, Any]] = []
        for v, n, s, devices in rows:
            # devices: "/dev/sdb(0),/dev/sdc(12)" (the extent in parentheses)
            devs = [d.split("(", 1)[0] for d in devices.split(",") if d] or ["-"]
            result.extend({"vg": v, "name": n, "size": mib(s), "dev": d}
                          for d in dict.fromkeys(devs))
        return result

    def list_pvs(self) -> list[dict[str, Any]]:
        """Every PV: ``{"name", "vg", "size", "used", "free", "allocatable"}`` (MiB)."""
        rows = self.report("pvs", ["pv_name", "vg_name", "pv_size", "pv_free", "pv_attr"])
        result = []
        for name, vg, size, free, attr in rows:
            total, left = mib(size), mib(free)
            result.append({"name": name, "vg": vg, "size": total, "used": total - left,
                           "free": left, "allocatable": attr.startswith("a")})
        return result

    # --- logical volumes -------------------------------------------------------------------

    def lv_info(self, vg: str, lv: str) -> dict[str, Any] | None:
        """``{"size", "attr"}`` of one LV, or None when it does not exist."""
        result = self.run("lvs", "--noheadings", "--units", "m", "--nosuffix",
                          f"--separator={SEP}", "-o", "lv_name,lv_size,lv_attr", f"{vg}/{lv}",
                          check=False)
        if not result.ok:
            if _is_lv_missing(result):
                return None
            if _is_vg_missing(result):
                raise errors.WrongState(f"volume group '{vg}' does not exist on this node")
            raise failure(result)
        for name, size, attr in _rows(result.stdout, 3):
            if name == lv:
                return {"size": mib(size), "attr": attr}
        return None


def _is_lv_missing(result: Result) -> bool:
    text = result.stderr.lower()
    return any(s in text for s in _NOT_FOUND_LV)


def _is_vg_missing(result: Result) -> bool:
    text = result.stderr.lower()
    return all(s in text for s in _NOT_FOUND_VG)


class LogicalVolume(BlockDev):
    """One LV of the ``plain`` template (and a child of a DRBD disk)."""

    def __init__(self, logical_id: list[Any], size: int, params: dict[str, Any], *,
                 tool: LvmTool | None = None) -> None:
        super().__init__(logical_id, size, params)
        self.vg, self.name = parse_id(logical_id)
        self.logical_id = [self.vg, self.name]
        self.lvm = tool or LvmTool()
        try:
            self.stripes = int(params.get("stripes") or 1)
        except (TypeError, ValueError):
            raise errors.WrongInput(f"bad stripes value {params.get('stripes')!r}") from None
        if not 1 <= self.stripes <= 64:
            raise errors.WrongInput(f"bad stripes value {self.stripes}: expected 1 to 64")

    @property
    def path(self) -> str:
        return f"/dev/{self.vg}/{self.name}"

    @property
    def lvm_name(self) -> str:
        return f"{self.vg}/{self.name}"

    def exists(self) -> bool:
        return self.lvm.lv_info(self.vg, self.name) is not None

    def _require(self) -> dict[str, Any]:
        info = self.lvm.lv_info(self.vg, self.name)
        if info is None:
            raise errors.WrongState(f"logical volume {self.lvm_name} does not exist on this "
                                    "node")
        return info

    def _check_space(self, needed: int, doing: str) -> None:
        free = self.lvm.vg_info(self.vg)["free"]
        if free < needed:
            raise errors.InsufficientResources(
                f"not enough free space in volume group {self.vg} to {doing}: {needed} MiB "
                f"needed, {free} MiB free", f"short by {needed - free} MiB")

    def create(self) -> None:
        if self.size <= 0:
            raise errors.WrongInput(f"invalid disk size {self.size} MiB")
        self._check_space(self.size, f"create {self.name} ({self.size} MiB)")
        args = ["--yes", "--wipesignatures", "n", f"-L{self.size}m", "-n", self.name]
        if self.stripes > 1:
            args.append(f"-i{self.stripes}")
        result = self.lvm.run("lvcreate", *args, self.vg, check=False)
        if not result.ok:
            if "already exists" in result.stderr.lower():
                raise errors.AlreadyExists(f"logical volume {self.lvm_name} already exists")
            if "insufficient free space" in result.stderr.lower():
                raise errors.InsufficientResources(
                    f"not enough free space in volume group {self.vg} to create "
                    f"{self.name} ({self.size} MiB): {result.reason}")
            raise failure(result)

    def remove(self) -> None:
        result = self.lvm.run("lvremove", "-f", self.lvm_name, check=False)
        if result.ok or _is_lv_missing(result):
            return
        if _is_vg_missing(result):
            raise errors.WrongState(f"volume group '{self.vg}' does not exist on this node")
        raise failure(result)

    def assemble(self) -> str:
        result = self.lvm.run("lvchange", "-ay", self.lvm_name, check=False)
        if not result.ok:
            if _is_lv_missing(result):
                raise errors.WrongState(f"logical volume {self.lvm_name} does not exist on "
                                        "this node")
            raise failure(result)
        return self.path

    def shutdown(self) -> None:
        """Nothing: like Ganeti, a plain LV stays active (deactivating it gains nothing)."""

    def grow(self, amount: int) -> None:
        if amount <= 0:
            raise errors.WrongInput(f"invalid growth {amount} MiB: expected a positive size")
        self._require()
        self._check_space(amount, f"grow {self.name} by {amount} MiB")
        self.lvm.run("lvextend", f"-L+{amount}m", self.lvm_name)
        self.size += amount

    def rename(self, new_id: list[Any]) -> None:
        vg, name = parse_id(new_id)
        if vg != self.vg:
            raise errors.WrongInput(f"can't move {self.lvm_name} to volume group {vg}: a "
                                    "rename stays in its volume group")
        if name == self.name:
            self._require()
            return
        if self.lvm.lv_info(self.vg, self.name) is None:
            if self.lvm.lv_info(vg, name) is not None:  # renamed before: a retry
                self.name, self.logical_id = name, [vg, name]
                return
            self._require()
        self.lvm.run("lvrename", self.vg, self.name, name)
        self.name, self.logical_id = name, [vg, name]

    def actual_size(self) -> int:
        return int(self._require()["size"])

    def status(self) -> dict[str, Any]:
        info = self.lvm.lv_info(self.vg, self.name)
        if info is None:
            return {"path": self.path, "exists": False, "size": None}
        attr = str(info["attr"])
        return {"path": self.path, "exists": True, "size": info["size"], "attr": attr,
                "active": len(attr) > 4 and attr[4] == "a",
                "virtual": attr[:1] == "v"}


# --- node inventory (gnt-node volumes, list-storage) ---------------------------------------

def vg_info(vg: str, runner: CommandRunner | None = None) -> dict[str, int]:
    """``{"total", "free"}`` of a volume group, in MiB."""
    return LvmTool(runner).vg_info(vg)


def list_volumes(vg: str | None = None,
                 runner: CommandRunner | None = None) -> list[dict[str, Any]]:
    """``[{"vg", "name", "size", "attr"}]`` for gnt-node volumes / list-storage lvm-vg."""
    return LvmTool(runner).list_volumes(vg)


def list_volume_devices(vg: str | None = None,
                        runner: CommandRunner | None = None) -> list[dict[str, Any]]:
    """``[{"vg", "name", "size", "dev"}]``, one row per LV and PV, for gnt-node volumes."""
    return LvmTool(runner).list_volume_devices(vg)


def list_pvs(runner: CommandRunner | None = None) -> list[dict[str, Any]]:
    """Physical volumes for ``gnt-node list-storage --storage-type lvm-pv``."""
    return LvmTool(runner).list_pvs()


def list_vgs(runner: CommandRunner | None = None) -> list[dict[str, Any]]:
    """Volume groups for ``gnt-node list-storage --storage-type lvm-vg``."""
    return LvmTool(runner).list_vgs()
