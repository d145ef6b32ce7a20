"""Logical units for nodes: add (by join token, no root SSH), remove, modify roles."""

from __future__ import annotations

import ipaddress
from typing import Any

from cardume import errors, objects, opcodes
from cardume.cmdlib import common
from cardume.cmdlib.base import ALL, LogicalUnit, register
from cardume.jobs import locks
from cardume.rpc import join
from cardume.rules import disk_templates


@register
class LUNodeAdd(LogicalUnit):
    OP = opcodes.OpNodeAdd
    BGL_SHARED = False  # the node list and candidate pool change

    def check_arguments(self) -> None:
        common.check_hostname(self.op.node_name)
        for key in ("primary_ip", "secondary_ip"):
            value = getattr(self.op, key)
            if value:
                try:
                    ipaddress.IPv4Address(value)
                except ValueError:
                    raise errors.WrongInput(
                        f"invalid {key.replace('_', ' ')} '{value}': expected an IPv4 "
                        "address") from None
        if self.op.port is not None and not 0 < self.op.port < 65536:
            raise errors.WrongInput(f"invalid port {self.op.port}: expected 1..65535")
        self.ndparams = common.check_ndparams(self.op.ndparams)
        if self.op.join_token:
            self.token = join.parse_token(self.op.join_token)

    async def check_prereq(self) -> None:
        cfg = self.cfg
        cluster = cfg.get_cluster()
        resolved = self.ctx.resolver.resolve(self.op.node_name)
        # the resolver may lengthen the name (a hosts file's first name, DNS's canonical)
        self.name = common.check_hostname(resolved.name)
        self.ip = self.op.primary_ip or resolved.ip
        existing = cfg.find_node(self.name)
        if existing is not None and not self.op.readd:
            raise errors.AlreadyExists(f"node {self.name} is already in the cluster",
                                       "use --readd to add it again")
        if existing is None and self.op.readd:
            raise errors.UnknownEntity(f"node {self.name} is not in the cluster, "
                                       "so it can't be re-added")
        if existing is not None and existing.uuid == cluster.master_node:
            raise errors.WrongInput(f"node {self.name} is the master; it can't be re-added")
        for node in cfg.nodes.values():
            if node.primary_ip == self.ip and (existing is None or node.uuid != existing.uuid):
                raise errors.AlreadyExists(
                    f"address {self.ip} of {self.name} is already used by node {node.name}")
        if self.op.group:
            self.group = cfg.expand_group(self.op.group)
        elif existing is not None:
            self.group = cfg.groups[existing.group]
        else:
            self.group = common.default_group(cfg)
        # A re-added node that still belongs to this cluster (an old master back after a
        # failover without voting) has no token: it is checked in exec instead.
        if not self.op.join_token and not self.op.readd:
            raise errors.WrongInput(
                f"adding {self.name} needs its join token",
                f"run 'cardume node join-token' on {self.name} and pass it with "
                "--join-token")
        self.existing = existing
        self.port = self.op.port or cluster.noded_port

    async def exec(self) -> str:
        cfg = self.cfg
        cluster = cfg.get_cluster()
        ca = cfg.secrets["cluster-ca"]
        self.log_info(f"Contacting the node daemon of {self.name} at {self.ip}:{self.port}")
        if self.existing is not None:
            node = cfg.edit(self.existing)
            node.primary_ip = self.ip
            node.offline = False
            node.drained = False
        else:
            node = objects.Node(name=self.name, primary_ip=self.ip, port=self.port,
                                group=self.group.uuid)
        node.secondary_ip = self.op.secondary_ip or self.ip
        node.group = self.group.uuid
        node.port = self.port
        if self.op.master_capable is not None:
            node.master_capable = self.op.master_capable
        if self.op.vm_capable is not None:
            node.vm_capable = self.op.vm_capable
        node.ndparams = objects.merge_params(node.ndparams, self.ndparams)
        if self.op.join_token:
            fingerprint = await join.join_node(
                self.ip, self.port, self.token, node_name=self.name,
                ca_cert=ca["cert"], ca_key=ca["key"], cluster_name=cluster.cluster_name,
                ssconf=self.ctx.master.ssconf_data(extra=node),
                tls_files=self.ctx.master.client_tls_files(),
                timeout=30.0)
            node.cert_fingerprint = fingerprint
            self.log_info(f"{self.name} joined; its certificate {fingerprint[:23]}... is now "
                          "signed by the cluster CA")
        else:
            await self._check_member(node, cluster.cluster_name)
            self.log_info(f"{self.name} still holds its certificate from this cluster; "
                          "re-added without a join token")
        # A new capable node fills the candidate pool, as Ganeti's auto-promotion does.
        pool = cluster.candidate_pool_size
        if node.master_capable and len(cfg.candidates()) < pool:
            node.master_candidate = True
        if self.existing is not None:
            await cfg.commit(update=[node])
        else:
            await cfg.commit(add=[node])
        if node.master_candidate:
            self.log_info(f"{self.name} is a master candidate; sending it the configuration")
        await self.push_node_state()
        return node.name


    async def _check_member(self, node: objects.Node, cluster_name: str) -> None:
        """A re-added node without a token must still answer as this cluster's (the call's
        TLS checks its certificate against the cluster CA)."""
        hint = (f"if it left the cluster, run 'cardume node join-token' on {self.name} and "
                "pass the token with --join-token")
        try:
            info = await self.rpc.timed(30.0).version(node)
        except errors.CardumeError as err:
            raise errors.WrongState(f"node {self.name} does not answer as a member of this "
                                    f"cluster ({err})", hint) from None
        if not info.get("joined") or info.get("cluster_name") != cluster_name:
            raise errors.WrongState(f"node {self.name} is not a member of cluster "
                                    f"{cluster_name} any more", hint)


@register
class LUNodeRemove(LogicalUnit):
    OP = opcodes.OpNodeRemove
    BGL_SHARED = False

    async def check_prereq(self) -> None:
        self.node = self.cfg.expand_node(self.op.node_name)
        cluster = self.cfg.get_cluster()
        if self.node.uuid == cluster.master_node:
            raise errors.WrongInput(f"node {self.node.name} is the master node",
                                    "fail over the master to another node first")
        primary, secondary = common.instances_on_node(self.cfg, self.node.uuid)
        if primary or secondary:
            names = ", ".join(primary + secondary)
            raise errors.WrongState(f"node {self.node.name} still hosts instances: {names}",
                                    "move or remove them first")

    async def exec(self) -> None:
        node = self.node
        if node.offline:
            self.log_warning(f"{node.name} is offline, so it was not told to forget the "
                             "cluster")
        else:
            try:
                await self.rpc.leave(node)
            except errors.RpcError as err:
                self.log_warning(f"could not tell {node.name} to leave the cluster ({err}); "
                                 "its daemon will refuse the cluster from now on anyway")
            else:
                # The node made a fresh join token; it is printed there only, never here:
                # job logs and results are read by more people than the node's root.
                self.log_info(f"{node.name} forgot the cluster; to add it again, run "
                              f"'cardume node join-token' on {node.name} for its fresh "
                              "token")
        update: list[objects.ConfigObject] = []
        if node.master_candidate:
            for promoted in common.nodes_to_promote(self.cfg, exclude={node.uuid}):
                edited = self.cfg.edit(promoted)
                edited.master_candidate = True
                update.append(edited)
                self.log_info(f"Promoting {promoted.name} to master candidate")
        await self.cfg.commit(update=update, remove=[node])
        await self.push_node_state()


@register
class LUNodeSetParams(LogicalUnit):
    OP = opcodes.OpNodeSetParams
    BGL_SHARED = False

    def check_arguments(self) -> None:
        op = self.op
        flags = [op.master_candidate, op.offline, op.drained]
        if sum(1 for f in flags if f) > 1:
            raise errors.WrongInput(
                "can't set the node into more than one state at the same time "
                "(only one of -C yes, -O yes, -D yes)")
        if all(v is None for v in (op.master_candidate, op.offline, op.drained,
                                   op.master_capable, op.vm_capable, op.secondary_ip,
                                   op.ndparams, op.powered)):
            raise errors.WrongInput("please pass at least one modification")
        self.ndparams = common.check_ndparams(op.ndparams)

    def declare_locks(self) -> dict[str, tuple[Any, bool]]:
        return {locks.LEVEL_NODE: (ALL, False)}

    async def check_prereq(self) -> None:
        op = self.op
        self.node = self.cfg.expand_node(op.node_name)
        node = self.node
        cluster = self.cfg.get_cluster()
        is_master = node.uuid == cluster.master_node
        if is_master and (op.master_candidate is False or op.offline or op.drained
                          or op.master_capable is False):
            raise errors.WrongInput(
                f"node {node.name} is the master; its role can only change through "
                "'gnt-cluster master-failover'")
        if op.master_candidate and (node.offline and op.offline is not False
                                    or node.drained and op.drained is not False):
            state = "offline" if node.offline else "drained"
            raise errors.WrongState(f"node {node.name} is {state} and can't become a master "
                                    "candidate; clear that flag in the same command first")
        if op.master_candidate and not node.master_capable and op.master_capable is not True:
            raise errors.WrongState(f"node {node.name} is not master capable")
        demoting = node.master_candidate and (
            op.master_candidate is False or op.offline or op.drained
            or op.master_capable is False)
        self.promote: list[objects.Node] = []
        # A node that leaves the pool of possible candidates (offline, drained, not capable)
        # lowers the number wanted; a plain -C no does not, as cluster verify counts it.
        leaving = bool(op.offline or op.drained or op.master_capable is False)
        if demoting:
            remaining = len(self.cfg.candidates()) - 1
            capable = [n for n in self.cfg.nodes.values()
                       if (n.uuid != node.uuid or not leaving) and n.master_capable
                       and not n.offline and not n.drained]
            wanted = min(cluster.candidate_pool_size, len(capable))
            if op.auto_promote:
                self.promote = common.nodes_to_promote(self.cfg, exclude={node.uuid})
                remaining += len(self.promote)
            if remaining < wanted and not op.force:
                hint = ("no other node can be promoted; use --force" if op.auto_promote
                        else "use --auto-promote to promote another node, or --force")
                raise errors.WrongState(
                    f"not enough master candidates (desired {wanted}, new value would be "
                    f"{remaining})", hint)
        self.promote_self = op.master_candidate is None and self._becomes_candidate()
        if op.secondary_ip is not None and op.secondary_ip != node.secondary_ip:
            self._check_secondary_ip(op.secondary_ip)

    def _check_secondary_ip(self, address: str) -> None:
        """A new replication address: a valid IPv4 one, and no DRBD connection of the node
        up with the old one (its peers would keep talking to an address that is gone)."""
        try:
            ipaddress.IPv4Address(address)
        except ValueError:
            raise errors.WrongInput(f"invalid secondary IP '{address}': expected an IPv4 "
                                    "address") from None
        busy = sorted(inst.name for inst in self.cfg.instances.values()
                      if disk_templates.of(inst.disk_template).network_mirrored
                      and self.node.uuid in (inst.primary_node, *inst.secondary_nodes)
                      and (inst.disks_active or inst.admin_state == "up"))
        if busy and not self.node.offline:
            raise errors.WrongState(
                f"the DRBD disks of {', '.join(busy)} are connected through the current "
                f"secondary IP of {self.node.name}",
                "stop those instances (or deactivate their disks) first")

    def _becomes_candidate(self) -> bool:
        """Whether a node coming back (online, undrained, capable) fills a short pool, as
        Ganeti auto-promotes it."""
        op, node = self.op, self.node
        offline = node.offline if op.offline is None else op.offline
        drained = node.drained if op.drained is None else op.drained
        capable = node.master_capable if op.master_capable is None else op.master_capable
        returning = ((node.offline and not offline) or (node.drained and not drained)
                     or (not node.master_capable and capable))
        if node.master_candidate or not returning or offline or drained or not capable:
            return False
        others = [n for n in self.cfg.nodes.values() if n.uuid != node.uuid
                  and n.master_capable and not n.offline and not n.drained]
        wanted = min(self.cfg.get_cluster().candidate_pool_size, len(others) + 1)
        return len(self.cfg.candidates()) < wanted

    async def exec(self) -> list[tuple[str, str]]:
        op = self.op
        node = self.cfg.edit(self.node)
        changes: list[tuple[str, str]] = []
        if op.offline is not None and op.offline != node.offline:
            node.offline = op.offline
            changes.append(("offline", str(op.offline)))
            if op.offline and node.master_candidate:
                node.master_candidate = False
                changes.append(("master_candidate", "auto-demotion due to offline"))
            if op.offline and node.drained:
                node.drained = False
                changes.append(("drained", "clear drained status due to offline"))
        if op.drained is not None and op.drained != node.drained:
            node.drained = op.drained
            changes.append(("drained", str(op.drained)))
            if op.drained and node.master_candidate:
                node.master_candidate = False
                changes.append(("master_candidate", "auto-demotion due to drain"))
        if op.master_capable is not None and op.master_capable != node.master_capable:
            node.master_capable = op.master_capable
            changes.append(("master_capable", str(op.master_capable)))
            if not op.master_capable and node.master_candidate:
                node.master_candidate = False
                changes.append(("master_candidate", "auto-demotion due to master_capable"))
        if op.master_candidate is not None and op.master_candidate != node.master_candidate:
            node.master_candidate = op.master_candidate
            changes.append(("master_candidate", str(op.master_candidate)))
        if self.promote_self:
            node.master_candidate = True
            changes.append(("master_candidate", "True"))
            self.log_info(f"Auto-promoting {node.name} to master candidate")
        if op.vm_capable is not None and op.vm_capable != node.vm_capable:
            node.vm_capable = op.vm_capable
            changes.append(("vm_capable", str(op.vm_capable)))
        if op.secondary_ip is not None and op.secondary_ip != node.secondary_ip:
            node.secondary_ip = op.secondary_ip
            changes.append(("secondary_ip", op.secondary_ip))
        if op.powered is not None and op.powered != node.powered:
            node.powered = op.powered
            changes.append(("powered", str(op.powered)))
        if self.ndparams:
            node.ndparams = objects.merge_params(node.ndparams, self.ndparams)
            changes.append(("ndparams", str(self.ndparams)))
        update: list[objects.ConfigObject] = [node]
        for promoted in self.promote:
            edited = self.cfg.edit(promoted)
            edited.master_candidate = True
            update.append(edited)
            self.log_info(f"Promoting {promoted.name} to master candidate")
        if not changes:
            return []
        await self.cfg.commit(update=update)
        if self.node.offline and not node.offline:
            self.log_info(f"{node.name} is back online; sending it the cluster state")
        await self.push_node_state()
        return changes
