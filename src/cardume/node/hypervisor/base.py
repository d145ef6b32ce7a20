"""The hypervisor seam: the narrow, complete interface every hypervisor implements.

The master sends an instance "spec" (a dict: name, uuid, hypervisor, filled hvparams and
beparams, disks with their local block-device paths, NICs); the hypervisor starts, stops,
reboots, lists and migrates instances from it. Names and meanings follow Ganeti's
hypervisor classes; the code is ours.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

Spec = dict[str, Any]


class Hypervisor(ABC):
    NAME = ""
    CAN_MIGRATE = False

    @abstractmethod
    def list_instances(self) -> list[str]:
        """Names of the instances running on this node."""

    def list_incoming(self) -> list[str]:
        """Names of instances this node holds as a migration target not yet finalized (left
        so when a migration was cut short): not in list_instances, yet a process."""
        return []

    @abstractmethod
    def instance_info(self, name: str) -> dict[str, Any] | None:
        """{"state", "memory", "vcpus", "started"} of a running instance, None if not running."""

    @abstractmethod
    def start(self, spec: Spec) -> None:
        """Start the instance; raise if it is already running."""

    @abstractmethod
    def stop(self, name: str, timeout: float, force: bool) -> None:
        """Stop the instance (politely, then by force after timeout)."""

    @abstractmethod
    def reboot(self, name: str) -> None:
        """Reboot a running instance."""

    def all_instances_info(self) -> dict[str, dict[str, Any]]:
        """instance_info of every running instance, by name."""
        found: dict[str, dict[str, Any]] = {}
        for name in self.list_instances():
            info = self.instance_info(name)
            if info is not None:
                found[name] = info
        return found

    def memory_used(self) -> int:
        """MiB of memory the running instances take from this node."""
        return sum(int(info.get("memory", 0)) for info in self.all_instances_info().values())

    # Migration, in three steps as Ganeti does: the target accepts, the source migrates,
    # both finalize. Hypervisors that can't migrate keep these refusals.
    def accept_instance(self, spec: Spec, source: str) -> dict[str, Any]:
        raise NotImplementedError(f"the {self.NAME} hypervisor can't migrate instances")

    def migrate(self, name: str, target: str, info: dict[str, Any], live: bool,
                hvparams: dict[str, Any] | None = None) -> None:
        """hvparams: the instance's as the configuration has them now (the migration
        settings are read at migration time, as in Ganeti, not when the instance started)."""
        raise NotImplementedError(f"the {self.NAME} hypervisor can't migrate instances")

    def finalize_migration_target(self, spec: Spec, success: bool) -> None:
        raise NotImplementedError(f"the {self.NAME} hypervisor can't migrate instances")

    def finalize_migration_source(self, name: str, success: bool) -> None:
        raise NotImplementedError(f"the {self.NAME} hypervisor can't migrate instances")

    def verify(self) -> list[str]:
        """Problems with the hypervisor on this node (empty when healthy)."""
        return []
