"""The typed configuration in memory, on top of the store, with commits and replication.

The master keeps every object in memory (reads never touch the disk) and writes through to
the store one change set per commit. Objects handed out by the getters are the cached
ones and must be treated as read-only: a logical unit that changes an object takes an
editable copy with ``edit()`` and hands it to ``commit()``; a failure before the commit
leaves the cache and the store exactly as they were.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any, TypeVar

from cardume import errors, objects
from cardume.config.store import ChangeSet, ConfigStore

log = logging.getLogger(__name__)

ObjT = TypeVar("ObjT", bound=objects.ConfigObject)
Replicator = Callable[[ChangeSet], Awaitable[None]]

SECRET_KIND = "secret"


class ConfigWriter:
    def __init__(self, store: ConfigStore, replicate: Replicator | None = None) -> None:
        self.store = store
        self.replicate = replicate
        self.cluster: objects.Cluster | None = None
        self.nodes: dict[str, objects.Node] = {}
        self.groups: dict[str, objects.NodeGroup] = {}
        self.instances: dict[str, objects.Instance] = {}
        self.networks: dict[str, objects.Network] = {}
        self.secrets: dict[str, dict[str, Any]] = {}
        self._by_name: dict[str, dict[str, str]] = {"node": {}, "nodegroup": {}, "instance": {},
                                                     "network": {}}
        # short name ("vm1" of "vm1.example.com") -> uuids: lookups stay O(1) at any size
        self._by_short: dict[str, dict[str, set[str]]] = {"node": {}, "nodegroup": {},
                                                          "instance": {}, "network": {}}
        # NIC MAC and IP addresses in use -> instance uuid (uniqueness checks, MAC generation)
        self.macs: dict[str, str] = {}
        self.nic_ips: dict[str, str] = {}
        self.serial = store.serial()
        # (serial, count) -> instances in name order: listings ask it at every query
        self._sorted_instances: tuple[tuple[int, int], list[objects.Instance]] | None = None
        self._load()

    # --- loading and indexes ------------------------------------------------------------

    def _load(self) -> None:
        rows = self.store.load()
        for uuid, data in rows.get("cluster", {}).items():
            self.cluster = objects.Cluster.from_dict(data)
            self.cluster.uuid = uuid
        self.nodes = {u: objects.Node.from_dict(d) for u, d in rows.get("node", {}).items()}
        self.groups = {u: objects.NodeGroup.from_dict(d)
                       for u, d in rows.get("nodegroup", {}).items()}
        self.instances = {u: objects.Instance.from_dict(d)
                          for u, d in rows.get("instance", {}).items()}
        self.networks = {u: objects.Network.from_dict(d)
                         for u, d in rows.get("network", {}).items()}
        self.secrets = dict(rows.get(SECRET_KIND, {}))
        for kind, table in (("node", self.nodes), ("nodegroup", self.groups),
                            ("instance", self.instances), ("network", self.networks)):
            for uuid, obj in table.items():
                self._index(kind, uuid, obj)

    def _index(self, kind: str, uuid: str, obj: Any) -> None:
        self._by_name[kind][obj.name] = uuid
        self._by_short[kind].setdefault(obj.name.split(".", 1)[0], set()).add(uuid)
        if kind == "instance":
            for nic in obj.nics:
                self.macs[nic.mac] = uuid
                if nic.ip:
                    self.nic_ips[nic.ip] = uuid

    def _unindex(self, kind: str, uuid: str, obj: Any) -> None:
        if self._by_name[kind].get(obj.name) == uuid:
            del self._by_name[kind][obj.name]
        self._by_short[kind].get(obj.name.split(".", 1)[0], set()).discard(uuid)
        if kind == "instance":
            for nic in obj.nics:
                if self.macs.get(nic.mac) == uuid:
                    del self.macs[nic.mac]
                if nic.ip and self.nic_ips.get(nic.ip) == uuid:
                    del self.nic_ips[nic.ip]

    def _table(self, kind: str) -> dict[str, Any]:
        if kind == "node":
            return self.nodes
        if kind == "nodegroup":
            return self.groups
        if kind == "instance":
            return self.instances
        if kind == "network":
            return self.networks
        raise errors.InternalError(f"no table for kind {kind!r}")

    def get_cluster(self) -> objects.Cluster:
        if self.cluster is None:
            raise errors.NotCluster("this node is not part of a cluster",
                                    "run 'gnt-cluster init' first")
        return self.cluster

    # --- lookups -----------------------------------------------------------------------

    def _lookup(self, kind: str, name: str) -> Any:
        table = self._table(kind)
        if name in table:
            return table[name]
        index = self._by_name[kind]
        uuid = index.get(name)
        if uuid is None and "." not in name:
            # Ganeti accepts a short name when it names exactly one full name.
            matches = self._by_short[kind].get(name, set())
            if len(matches) == 1:
                uuid = next(iter(matches))
        return table.get(uuid) if uuid else None

    def find_node(self, name: str) -> objects.Node | None:
        node: objects.Node | None = self._lookup("node", name)
        return node

    def find_group(self, name: str) -> objects.NodeGroup | None:
        group: objects.NodeGroup | None = self._lookup("nodegroup", name)
        return group

    def find_instance(self, name: str) -> objects.Instance | None:
        inst: objects.Instance | None = self._lookup("instance", name)
        return inst

    def find_network(self, name: str) -> objects.Network | None:
        network: objects.Network | None = self._lookup("network", name)
        return network

    def expand_network(self, name: str) -> objects.Network:
        network = self.find_network(name)
        if network is None:
            raise errors.UnknownEntity(f"network '{name}' does not exist",
                                       "see 'gnt-network list'")
        return network

    def expand_node(self, name: str) -> objects.Node:
        node = self.find_node(name)
        if node is None:
            raise errors.UnknownEntity(f"node '{name}' is not known to the cluster",
                                       "see 'gnt-node list'")
        return node

    def expand_group(self, name: str) -> objects.NodeGroup:
        group = self.find_group(name)
        if group is None:
            raise errors.UnknownEntity(f"node group '{name}' does not exist",
                                       "see 'gnt-group list'")
        return group

    def expand_instance(self, name: str) -> objects.Instance:
        inst = self.find_instance(name)
        if inst is None:
            raise errors.UnknownEntity(f"instance '{name}' is not known to the cluster",
                                       "see 'gnt-instance list'")
        return inst

    def master_node(self) -> objects.Node:
        return self.nodes[self.get_cluster().master_node]

    def node_name(self, uuid: str) -> str:
        node = self.nodes.get(uuid)
        return node.name if node else uuid

    def group_of(self, node: objects.Node) -> objects.NodeGroup | None:
        return self.groups.get(node.group)

    def nodes_in_group(self, group_uuid: str) -> list[objects.Node]:
        return [n for n in self.nodes.values() if n.group == group_uuid]

    def candidates(self) -> list[objects.Node]:
        """Master candidates that are online, the master included."""
        return [n for n in self.nodes.values() if n.master_candidate and not n.offline]

    def sorted_nodes(self) -> list[objects.Node]:
        return sorted(self.nodes.values(), key=lambda n: n.name)

    def sorted_instances(self) -> list[objects.Instance]:
        """Every instance in name order (a new list; the objects are the cached ones).
        Sorted again only after a commit: every commit moves the serial on."""
        key = (self.serial, len(self.instances))
        cached = self._sorted_instances
        if cached is None or cached[0] != key:
            cached = self._sorted_instances = (
                key, sorted(self.instances.values(), key=lambda i: i.name))
        return list(cached[1])

    # --- changes -----------------------------------------------------------------------

    @staticmethod
    def edit(obj: ObjT) -> ObjT:
        """An editable copy of a cached object, for commit()."""
        return type(obj).from_dict(obj.to_dict())

    async def commit(self, add: Sequence[objects.ConfigObject] = (),
                     update: Sequence[objects.ConfigObject] = (),
                     remove: Sequence[objects.ConfigObject] = (),
                     secrets: dict[str, dict[str, Any] | None] | None = None) -> ChangeSet:
        """Write the objects, update the cache, and replicate to the master candidates."""
        upserts: list[tuple[str, str, dict[str, Any]]] = []
        for obj in add:
            name = getattr(obj, "name", None)
            if name is not None and name in self._by_name[obj.KIND]:
                raise errors.AlreadyExists(f"{obj.KIND} '{name}' already exists")
            upserts.append((obj.KIND, obj.uuid, obj.to_dict()))
        for obj in update:
            obj.touch()
            upserts.append((obj.KIND, obj.uuid, obj.to_dict()))
        deletes = [(obj.KIND, obj.uuid) for obj in remove]
        for key, value in (secrets or {}).items():
            if value is None:
                deletes.append((SECRET_KIND, key))
            else:
                upserts.append((SECRET_KIND, key, value))
        change = ChangeSet(self.serial + 1, upserts, deletes)
        self.store.apply(change)
        self.serial = change.serial
        self._apply_to_cache(change, add, update)
        if self.replicate is not None:
            await self.replicate(change)
        return change

    def _apply_to_cache(self, change: ChangeSet, add: Iterable[objects.ConfigObject],
                        update: Iterable[objects.ConfigObject]) -> None:
        for kind, uuid in change.deletes:
            if kind == SECRET_KIND:
                self.secrets.pop(uuid, None)
                continue
            table = self._table(kind)
            old = table.pop(uuid, None)
            if old is not None:
                self._unindex(kind, uuid, old)
        for obj in [*add, *update]:
            if isinstance(obj, objects.Cluster):
                self.cluster = obj
                continue
            table = self._table(obj.KIND)
            old = table.get(obj.uuid)
            if old is not None:
                self._unindex(obj.KIND, obj.uuid, old)
            table[obj.uuid] = obj
            self._index(obj.KIND, obj.uuid, obj)
        for kind, uuid, data in change.upserts:
            if kind == SECRET_KIND:
                self.secrets[uuid] = data

    def all_rows(self) -> list[tuple[str, str, dict[str, Any]]]:
        rows: list[tuple[str, str, dict[str, Any]]] = []
        if self.cluster is not None:
            rows.append(("cluster", self.cluster.uuid, self.cluster.to_dict()))
        for table in (self.groups, self.nodes, self.instances, self.networks):
            rows.extend((o.KIND, u, o.to_dict()) for u, o in table.items())
        rows.extend((SECRET_KIND, k, v) for k, v in self.secrets.items())
        return rows
