"""Node RPC handlers for running instances: start, stop, reboot, list, migrate (Ganeti's
steps: accept on the target, migrate on the source, finalize on both; and --cleanup), and
the serial console. The hypervisor (node/hypervisor) does the work."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from cardume import constants, errors
from cardume.node.callkit import NodeContext, blocking
from cardume.node.hypervisor.base import Hypervisor
from cardume.rpc.calls import serves
from cardume.rpc.http import PeerInfo, StreamUpgrade
from cardume.rpc.wire import InstanceSpec

log = logging.getLogger("cardume.noded")

MIGRATION_ROLES = ("source", "target")
CLEANUP_ACTIONS = (None, "keep", "resume", "quit", "kill", "leave")


def _role(role: str) -> str:
    if role not in MIGRATION_ROLES:
        raise errors.WrongInput(f"invalid role {role!r}: expected source or target")
    return role


class InstanceCalls:
    def __init__(self, node: NodeContext) -> None:
        self.node = node

    @serves
    async def instance_start(self, peer: PeerInfo, instance: InstanceSpec) -> None:
        """Start the instance; already running is success, as in Ganeti."""
        name = instance.name
        hv = self.node.hv(instance.hypervisor)
        info = hv.instance_info(name)
        if info is not None and info.get("state") != constants.HV_STATE_USER_DOWN:
            log.info("instance %s is already running, not starting it", name)
            return
        if info is not None:  # its guest powered off, its QEMU waits: a fresh one instead
            await blocking(hv.stop, name, 0, True)
        paths = await blocking(self.node.assemble, instance)
        await blocking(hv.start, self.node.with_paths(instance, paths))

    @serves
    async def instance_shutdown(self, peer: PeerInfo, instance: InstanceSpec,
                                timeout: float | None) -> None:
        hv = self.node.hv(instance.hypervisor)
        if hv.instance_info(instance.name) is None:
            return
        await blocking(hv.stop, instance.name, _seconds(timeout, "timeout"), False)

    @serves
    async def instance_reboot(self, peer: PeerInfo, instance: InstanceSpec, reboot_type: str,
                              shutdown_timeout: float | None) -> None:
        """soft: the hypervisor reboots the guest; hard: stop and start; full: stop,
        release and re-assemble the disks, start. soft and hard need a running instance."""
        kind = reboot_type
        if kind not in constants.INSTANCE_REBOOT_TYPES:
            raise errors.WrongInput(f"invalid reboot type {kind!r}: expected "
                                    f"{', '.join(constants.INSTANCE_REBOOT_TYPES)}")
        timeout = _seconds(shutdown_timeout, "shutdown_timeout")
        name = instance.name
        hv = self.node.hv(instance.hypervisor)
        info = hv.instance_info(name)
        if info is not None and info.get("state") == constants.HV_STATE_USER_DOWN:
            await blocking(hv.stop, name, 0, True)
            info = None
        running = info is not None
        if kind != "full" and not running:
            raise errors.WrongState(f"instance {name} is not running, so it can't reboot")
        if kind == "soft":
            await blocking(hv.reboot, name)
            return
        if running:
            await blocking(hv.stop, name, timeout, False)
        if kind == "full":
            await blocking(self.node.release, instance)
        paths = await blocking(self.node.assemble, instance)
        await blocking(hv.start, self.node.with_paths(instance, paths))

    @serves
    async def instance_list(self, peer: PeerInfo, hypervisors: list[str] | None) -> list[str]:
        hvs = self.node.hypervisors(hypervisors)
        return sorted({n for hv in hvs for n in await blocking(hv.list_instances)})

    @serves
    async def instance_list_incoming(self, peer: PeerInfo,
                                     hypervisors: list[str] | None) -> list[str]:
        hvs = self.node.hypervisors(hypervisors)
        return sorted({n for hv in hvs for n in await blocking(hv.list_incoming)})

    @serves
    async def instance_info_all(self, peer: PeerInfo,
                                hypervisors: list[str] | None) -> dict[str, Any]:
        hvs = self.node.hypervisors(hypervisors)

        def collect() -> dict[str, Any]:
            found: dict[str, Any] = {}
            for hv in hvs:
                found.update(hv.all_instances_info())
            return found
        return await blocking(collect)

    # --- migration -----------------------------------------------------------------------------

    def _migrating_hv(self, spec: InstanceSpec) -> Hypervisor:
        hv = self.node.hv(spec.hypervisor)
        if not hv.CAN_MIGRATE:
            raise errors.WrongState(f"the {hv.NAME} hypervisor can't migrate instances")
        return hv

    @serves
    async def accept_instance(self, peer: PeerInfo, instance: InstanceSpec,
                              source: str) -> dict[str, Any] | None:
        """On the target -> migration info for instance_migrate."""
        hv = self._migrating_hv(instance)
        paths = await blocking(self.node.assemble, instance)
        return await blocking(hv.accept_instance, self.node.with_paths(instance, paths),
                              source)

    @serves
    async def instance_migrate(self, peer: PeerInfo, instance: InstanceSpec, target: str,
                               info: dict[str, Any] | None, live: bool) -> None:
        """On the source: send the instance to ``target`` (what accept_instance said)."""
        hv = self._migrating_hv(instance)
        await blocking(hv.migrate, instance.name, target, dict(info or {}), live,
                       dict(instance.hvparams))

    @serves
    async def instance_finalize_migration_dst(self, peer: PeerInfo, instance: InstanceSpec,
                                              success: bool) -> None:
        """On the target: run it there, or forget it."""
        hv = self._migrating_hv(instance)
        paths = await blocking(self.node.assemble, instance)
        await blocking(hv.finalize_migration_target, self.node.with_paths(instance, paths),
                       success)

    @serves
    async def instance_finalize_migration_src(self, peer: PeerInfo, instance: InstanceSpec,
                                              success: bool) -> None:
        """On the source: stop it here, or keep it running."""
        hv = self._migrating_hv(instance)
        await blocking(hv.finalize_migration_source, instance.name, success)

    def _cleanup_hv(self, spec: InstanceSpec) -> Any:
        from cardume.node.hypervisor.kvm import KvmHypervisor
        hv = self._migrating_hv(spec)
        if not isinstance(hv, KvmHypervisor):
            raise errors.WrongInput(f"the {hv.NAME} hypervisor migrates atomically: there "
                                    "is nothing to clean up")
        return hv

    @serves
    async def instance_migration_state(self, peer: PeerInfo, instance: InstanceSpec,
                                       role: str) -> str:
        """This side's state of an interrupted migration (migrate --cleanup)."""
        _role(role)
        hv = self._cleanup_hv(instance)
        return str(await blocking(hv.migration_state, instance.name, role))

    @serves
    async def instance_migration_cleanup(self, peer: PeerInfo, instance: InstanceSpec,
                                         role: str, action: str | None) -> None:
        """This side's part of the cleanup plan."""
        _role(role)
        if action not in CLEANUP_ACTIONS:
            raise errors.WrongInput(f"invalid cleanup action {action!r}")
        hv = self._cleanup_hv(instance)
        await blocking(hv.migration_cleanup, instance.name, role, action)

    # --- the console ---------------------------------------------------------------------------

    @serves
    async def instance_console(self, peer: PeerInfo, instance: str,
                               hypervisor: str | None, kind: str = "serial") -> StreamUpgrade:
        """The reply is followed by the raw serial console (``kind`` "serial") or the VNC
        display ("vnc", as QEMU serves it on this node) of the instance on the same
        connection (see node/console.py); only kvm has one to relay."""
        from cardume.node import console
        from cardume.node.hypervisor.kvm import KvmHypervisor
        name = instance
        if kind not in ("serial", "vnc"):
            raise errors.WrongInput(f"console kind {kind!r}: expected serial or vnc")
        hv = self.node.hv(hypervisor or "kvm")
        if not isinstance(hv, KvmHypervisor):
            raise errors.WrongInput(f"the {hv.NAME} hypervisor has no {kind} console to "
                                    "relay")
        target: str | tuple[str, int]
        if kind == "serial":
            target = await blocking(hv.serial_socket, name)
        else:
            target = console.vnc_target(await blocking(hv.instance_info, name), name)
        key = f"{hv.NAME}:{kind}:{name}"
        console.claim(key, name)

        async def run(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await console.relay(target, key, reader, writer)
        return StreamUpgrade({"instance": name, "node": self.node.name}, run,
                             abandon=lambda: console.release(key))


def _seconds(value: float | None, what: str) -> float:
    if value is None:
        return 0.0
    if value < 0:
        raise errors.WrongInput(f"argument '{what}' must be a number of seconds")
    return value
