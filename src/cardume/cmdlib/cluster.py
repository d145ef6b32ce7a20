"""Logical units for the cluster as a whole: verify, modify, redist-conf, destroy."""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from typing import Any

from cardume import __version__, constants, errors, objects, opcodes, storage_paths, uidpool
from cardume.cmdlib import common, iallocator, instance_policy
from cardume.cmdlib.base import ALL, LogicalUnit, register
from cardume.jobs import locks
from cardume.rules import disk_templates

# Cluster verify's problem codes (Ganeti's names, so scripts that grep them keep working).
ECLUSTERCFG = "ECLUSTERCFG"
ECLUSTERCERT = "ECLUSTERCERT"
ENODERPC = "ENODERPC"
ENODEVERSION = "ENODEVERSION"
ENODEFILECHECK = "ENODEFILECHECK"
ENODEFILESTORAGEPATHS = "ENODEFILESTORAGEPATHS"
ENODETIME = "ENODETIME"
ENODESETUP = "ENODESETUP"
ENODEORPHANINSTANCE = "ENODEORPHANINSTANCE"
ENODEORPHANLV = "ENODEORPHANLV"
ENODEORPHANFILE = "ENODEORPHANFILE"  # ours: Ganeti does not look for stray disk files
ENODELVM = "ENODELVM"
EINSTANCEMISSINGDISK = "EINSTANCEMISSINGDISK"
EINSTANCEDOWN = "EINSTANCEDOWN"
EINSTANCEWRONGNODE = "EINSTANCEWRONGNODE"
EINSTANCEPOLICY = "EINSTANCEPOLICY"

CERT_WARN_DAYS = 30
MAX_CLOCK_SKEW = 150.0  # seconds, as Ganeti's NODE_MAX_CLOCK_SKEW
MAX_NAMED = 5  # instances named in one refusal; the rest are counted

# The storage directory of each file-based template, from the capability table (the Cluster
# field, the ssconf key and the node call's key are the same name).
STORAGE_DIRS = {t.file_dir: name for name, t in disk_templates.TABLE.items() if t.file_dir}


@register
class LUClusterVerify(LogicalUnit):
    OP = opcodes.OpClusterVerify

    def declare_locks(self) -> dict[str, tuple[Any, bool]]:
        return {locks.LEVEL_NODEGROUP: (ALL, True), locks.LEVEL_NODE: (ALL, True)}

    async def check_prereq(self) -> None:
        if self.op.group_name:
            self.cfg.expand_group(self.op.group_name)

    def _report(self, severity: str, code: str, kind: str, item: str, message: str) -> None:
        if code in self.op.ignore_errors and severity == "ERROR":
            severity = "WARNING"
        if severity == "ERROR":
            self.bad = True
        if self.op.error_codes:
            self.log_info(f"  - {severity}:{code}:{kind}:{item}:{message}")
        else:
            self.log_info(f"  - {severity}: {kind} {item}: {message}")

    async def exec(self) -> bool:
        self.bad = False
        cfg = self.cfg
        cluster = cfg.get_cluster()
        self.log_info("* Verifying cluster config")
        self._verify_config(cluster)

        nodes = cfg.sorted_nodes()
        if self.op.group_name:
            group = cfg.expand_group(self.op.group_name)
            nodes = [n for n in nodes if n.group == group.uuid]
        online = [n for n in nodes if not n.offline]
        for node in nodes:
            if node.offline:
                self.log_info(f"  - NOTICE: node {node.name} is offline, not verified")
        self.log_info(f"* Gathering data ({len(online)} nodes)")
        dirs = {key: getattr(cluster, key) for key, template in STORAGE_DIRS.items()
                if template in cluster.enabled_disk_templates}
        master_ca = cfg.secrets.get("cluster-ca", {}).get("cert", "")
        results = await self.rpc.each(online, self.rpc.node_verify,
                                      cluster_name=cluster.cluster_name, dirs=dirs,
                                      ca_cert=master_ca)
        now = time.time()
        self.log_info("* Verifying node status")
        for node in online:
            result = results[node.name]
            if result.error is not None:
                reason = str(result.error).removeprefix(f"node {node.name}: ")
                self._report("ERROR", ENODERPC, "node", node.name,
                             f"while contacting node: {reason}")
                continue
            self._verify_node(node, result.value, now)
        self._verify_disk_paths(nodes)
        await self._verify_orphan_files(online, dirs)
        await self._verify_orphan_volumes(online)
        await self._verify_instances(online, nodes)
        self._verify_policies(nodes)
        return not self.bad

    def _verify_policies(self, nodes: list[objects.Node]) -> None:
        """Instances outside their group's instance policy (a warning, as in Ganeti: they
        run, but the policy would refuse them as they are now)."""
        for inst in self._verified_instances(nodes):
            for problem in instance_policy.instance_violations(self.cfg, inst):
                self._report("WARNING", EINSTANCEPOLICY, "instance", inst.name, problem)

    def _verified_instances(self, nodes: list[objects.Node]) -> list[objects.Instance]:
        verified = {n.uuid for n in nodes}
        return sorted((i for i in self.cfg.instances.values() if i.primary_node in verified),
                      key=lambda i: i.name)

    def _verify_disk_paths(self, nodes: list[objects.Node]) -> None:
        """Every file and sharedfile disk lies inside the cluster's storage directory for its
        template: nodes refuse any other path, so such an instance can't start."""
        cluster = self.cfg.get_cluster()
        self.log_info("* Verifying file storage paths")
        for inst in self._verified_instances(nodes):
            for index, disk in enumerate(inst.disks):
                key = file_dir_key(disk.dev_type)
                if key is None or len(disk.logical_id) != 2:
                    continue
                base = getattr(cluster, key)
                path = str(disk.logical_id[1])
                if not base or not storage_paths.is_below(storage_paths.normal(path),
                                                          storage_paths.normal(base)):
                    self._report(
                        "ERROR", EINSTANCEMISSINGDISK, "instance", inst.name,
                        f"disk/{index} '{path}' is outside the {storage_paths.label(key)} "
                        f"'{base}', so its node refuses it and the instance can't start "
                        f"(gnt-cluster modify {storage_paths.OPTIONS[key]} with a directory "
                        "that holds it)")

    async def _verify_orphan_files(self, online: list[objects.Node],
                                   dirs: Mapping[str, str]) -> None:
        """Each node's judgement of the storage directories (refused ones are
        ENODEFILESTORAGEPATHS), and disk files in them that no instance's disk is: left by
        an interrupted add or move. A sharedfile directory is one for every node, so each
        of its orphans is reported once."""
        if not dirs:
            return
        self.log_info("* Verifying orphan disk files")
        results = await self.rpc.each(online, self.rpc.file_storage_list, dirs=dict(dirs))
        local, shared = file_disk_claims(self.cfg.instances.values())
        seen_shared: set[str] = set()
        for node in online:
            result = results[node.name]
            if result.error is not None:
                continue  # node_verify has reported the node as unreachable
            reply = result.value or {}
            for problem in reply.get("allowed_problems") or []:
                self._report("WARNING", ENODEFILESTORAGEPATHS, "node", node.name,
                             f"{storage_paths.ALLOWED_PATHS_FILE}: {problem} (entry ignored)")
            for key, reason in sorted((reply.get("refused") or {}).items()):
                self._report("ERROR", ENODEFILESTORAGEPATHS, "node", node.name,
                             f"the {storage_paths.label(key)} is refused here: {reason}")
            for key, files in sorted((reply.get("files") or {}).items()):
                if (reply.get("truncated") or {}).get(key):
                    self._report("WARNING", ENODEFILESTORAGEPATHS, "node", node.name,
                                 f"more than {len(files)} files in the "
                                 f"{storage_paths.label(key)}: only those were checked")
                for entry in files:
                    path = str(entry.get("path", ""))
                    if key == "shared_file_storage_dir":
                        if path in shared or path in seen_shared:
                            continue
                        seen_shared.add(path)
                    elif path in local.get(node.uuid, set()):
                        continue
                    self._report("WARNING", ENODEORPHANFILE, "node", node.name,
                                 f"disk file {path} is unknown: no instance's disk uses it "
                                 f"(if nothing else does, remove it with "
                                 f"'rm -- {entry.get('local', path)}' on {node.name})")

    async def _verify_orphan_volumes(self, online: list[objects.Node]) -> None:
        """Logical volumes of the cluster's volume group that no instance's disk is (as
        Ganeti's ENODEORPHANLV, a warning): left by an interrupted add, a replace-disks
        whose old volumes were not removed, or made by hand."""
        cluster = self.cfg.get_cluster()
        vg = cluster.volume_group_name
        lvm = any(disk_templates.of(t).lvm for t in cluster.enabled_disk_templates)
        if not vg or not lvm:
            return
        self.log_info("* Verifying orphan volumes")
        nodes = [n for n in online if n.vm_capable]
        results = await self.rpc.each(nodes, self.rpc.node_volumes, vg=vg)
        claims = volume_claims(self.cfg.instances.values())
        for node in nodes:
            result = results[node.name]
            if result.error is not None:
                reason = str(result.error).removeprefix(f"node {node.name}: ")
                self._report("ERROR", ENODELVM, "node", node.name,
                             f"can't list the logical volumes of {vg}: {reason}")
                continue
            names = dict.fromkeys((str(v.get("vg", "")), str(v.get("name", "")))
                                  for v in result.value or [])  # one row per PV
            for lv_vg, lv in names:
                if lv_vg == vg and (lv_vg, lv) not in claims.get(node.uuid, set()):
                    self._report("WARNING", ENODEORPHANLV, "node", node.name,
                                 f"volume {lv_vg}/{lv} is unknown: no instance's disk uses "
                                 f"it (if nothing else does, remove it with 'lvremove "
                                 f"{lv_vg}/{lv}' on {node.name})")

    async def _verify_instances(self, online: list[objects.Node],
                                nodes: list[objects.Node]) -> None:
        """Each instance runs where the configuration says, and only there; nothing runs
        that the configuration does not know (a copy left by an interrupted migration is
        the case that matters: two copies of one guest would corrupt its disks)."""
        cfg = self.cfg
        self.log_info("* Verifying instances")
        hypervisors = list(cfg.get_cluster().enabled_hypervisors)
        running = await self.rpc.each(online, self.rpc.instance_list, hypervisors)
        incoming = await self.rpc.each(online, self.rpc.instance_list_incoming, hypervisors)
        answered = {n.uuid for n in online if running[n.name].error is None}
        where: dict[str, list[str]] = {}
        for node in online:
            if node.uuid not in answered:
                continue
            for name in running[node.name].value or []:
                inst = cfg.find_instance(name)
                if inst is None:
                    self._report("ERROR", ENODEORPHANINSTANCE, "node", node.name,
                                 f"instance {name} runs here but is not in the configuration")
                    continue
                where.setdefault(inst.uuid, []).append(node.uuid)
                if inst.primary_node != node.uuid:
                    pnode = cfg.nodes[inst.primary_node].name
                    self._report("ERROR", EINSTANCEWRONGNODE, "instance", inst.name,
                                 f"runs on {node.name}, not on its primary node {pnode} "
                                 "(after an interrupted migration: gnt-instance migrate "
                                 f"--cleanup -n {node.name} {inst.name})")
            result = incoming[node.name]
            for name in (result.value or []) if result.error is None else []:
                self._report("ERROR", EINSTANCEWRONGNODE, "instance", name,
                             f"a migration of it to {node.name} was left unfinished "
                             f"(gnt-instance migrate --cleanup -n {node.name} {name})")
        verified = {n.uuid for n in nodes}
        for inst in sorted(cfg.instances.values(), key=lambda i: i.name):
            pnode = inst.primary_node
            if pnode not in verified or pnode not in answered:
                continue
            on_primary = pnode in where.get(inst.uuid, [])
            if inst.admin_state == "up" and not on_primary:
                # running elsewhere: a start would be refused (it runs), a cleanup mends it
                elsewhere = [cfg.nodes[n].name for n in where.get(inst.uuid, [])
                             if n in cfg.nodes]
                fix = (f"gnt-instance migrate --cleanup -n {elsewhere[0]} {inst.name}"
                       if elsewhere else f"gnt-instance startup {inst.name}")
                self._report("ERROR", EINSTANCEDOWN, "instance", inst.name,
                             f"not running on its primary node {cfg.nodes[pnode].name} "
                             f"({fix})")
            elif inst.admin_state != "up" and on_primary:
                self._report("ERROR", EINSTANCEWRONGNODE, "instance", inst.name,
                             f"runs on {cfg.nodes[pnode].name} but is marked stopped "
                             f"(gnt-instance shutdown {inst.name})")

    def _verify_config(self, cluster: objects.Cluster) -> None:
        cfg = self.cfg
        if cluster.master_node not in cfg.nodes:
            self._report("ERROR", ECLUSTERCFG, "cluster", cluster.cluster_name,
                         "the master node is not in the configuration")
        for node in cfg.sorted_nodes():
            if node.group not in cfg.groups:
                self._report("ERROR", ECLUSTERCFG, "node", node.name,
                             f"belongs to a group that does not exist ({node.group})")
        master = cfg.nodes.get(cluster.master_node)
        if master is not None and not master.master_candidate:
            self._report("ERROR", ECLUSTERCFG, "node", master.name,
                         "the master node is not a master candidate")
        wanted = common.desired_candidates(cfg)
        have = len(cfg.candidates())
        if have < wanted:
            self._report("ERROR", ECLUSTERCFG, "cluster", cluster.cluster_name,
                         f"not enough master candidates: have {have}, want {wanted} "
                         "(use 'gnt-node modify -C yes' to promote one)")

    def _verify_node(self, node: objects.Node, info: dict[str, Any], now: float) -> None:
        name = node.name
        if info.get("version") != __version__:
            self._report("ERROR", ENODEVERSION, "node", name,
                         f"software version mismatch: master {__version__}, "
                         f"node {info.get('version')}")
        if info.get("cluster_name") != self.cfg.get_cluster().cluster_name:
            self._report("ERROR", ENODESETUP, "node", name,
                         f"believes it belongs to cluster '{info.get('cluster_name')}'")
        cert = info.get("cert") or {}
        if not cert.get("signed_by_cluster_ca", False):
            self._report("ERROR", ECLUSTERCERT, "node", name,
                         "node certificate is not signed by the cluster CA")
        days = cert.get("days_left")
        if isinstance(days, (int, float)):
            if days < 0:
                self._report("ERROR", ECLUSTERCERT, "node", name, "node certificate expired")
            elif days < CERT_WARN_DAYS:
                self._report("WARNING", ECLUSTERCERT, "node", name,
                             f"node certificate expires in {int(days)} days")
        node_time = info.get("time")
        if isinstance(node_time, (int, float)) and abs(node_time - now) > MAX_CLOCK_SKEW:
            self._report("ERROR", ENODETIME, "node", name,
                         f"clock skew of {node_time - now:+.0f}s against the master")
        for key, path in (info.get("missing_dirs") or {}).items():
            self._report("ERROR", ENODEFILESTORAGEPATHS, "node", name,
                         f"{key.replace('_', ' ')} '{path}' is missing or not a directory")
        is_master = node.uuid == self.cfg.get_cluster().master_node
        if node.master_candidate and not is_master:
            serial = info.get("config_serial")
            if serial != self.cfg.serial:
                self._report("ERROR", ENODEFILECHECK, "node", name,
                             f"configuration replica is at serial {serial}, the master at "
                             f"{self.cfg.serial} (run 'gnt-cluster redist-conf')")


@register
class LUClusterSetParams(LogicalUnit):
    OP = opcodes.OpClusterSetParams
    BGL_SHARED = False

    def check_arguments(self) -> None:
        op = self.op
        self.hvparams = common.check_hvparams(op.hvparams)
        self.beparams = common.check_beparams(op.beparams) if op.beparams is not None else None
        self.nicparams = (common.check_nicparams(op.nicparams)
                          if op.nicparams is not None else None)
        self.ndparams = (common.check_ndparams(op.ndparams)
                         if op.ndparams is not None else None)
        self.diskparams = common.check_diskparams(op.diskparams)
        if op.enabled_hypervisors is not None:
            common.check_enabled_list(op.enabled_hypervisors, constants.HYPER_TYPES,
                                      "hypervisor")
        if op.enabled_disk_templates is not None:
            common.check_enabled_list(op.enabled_disk_templates, constants.DISK_TEMPLATES,
                                      "disk template")
        if op.candidate_pool_size is not None and op.candidate_pool_size < 1:
            raise errors.WrongInput(
                f"candidate pool size must be at least 1, not {op.candidate_pool_size}")
        if op.max_running_jobs is not None and op.max_running_jobs < 1:
            raise errors.WrongInput(
                f"max running jobs must be at least 1, not {op.max_running_jobs}")
        if op.mac_prefix is not None:
            check_mac_prefix(op.mac_prefix)
        if op.default_iallocator and iallocator.find(op.default_iallocator) is None:
            raise errors.WrongInput(
                f"allocator '{op.default_iallocator}' not found (searched "
                f"{', '.join(iallocator.SEARCH_PATH)}; '{iallocator.BUILTIN}' is built in)")
        common.check_tags(op.add_tags or [])
        self.uid_changes = {key: uidpool.check(getattr(op, key))
                            for key in ("uid_pool", "add_uids", "remove_uids")
                            if getattr(op, key) is not None}
        for path in op.os_search_path or []:
            if not path.startswith("/"):
                raise errors.WrongInput(f"OS search path entry '{path}' must be an absolute "
                                        "path")
        # the new storage directories, normalised ("" unsets one)
        self.storage_dirs = {key: check_storage_dir(key, getattr(op, key))
                             for key in STORAGE_DIRS if getattr(op, key) is not None}

    async def check_prereq(self) -> None:
        cluster = self.cfg.get_cluster()
        if self.op.enabled_hypervisors is not None:
            used = {i.hypervisor for i in self.cfg.instances.values()}
            missing = used - set(self.op.enabled_hypervisors)
            if missing:
                raise errors.WrongState(
                    f"hypervisor(s) {', '.join(sorted(missing))} still used by instances")
        if self.op.enabled_disk_templates is not None:
            used = {i.disk_template for i in self.cfg.instances.values()}
            missing = used - set(self.op.enabled_disk_templates)
            if missing:
                raise errors.WrongState(
                    f"disk template(s) {', '.join(sorted(missing))} still used by instances")
        await self._check_storage_dirs(cluster)
        self.new_ipolicy = instance_policy.new_policy(self.cfg, None, self.op.ipolicy,
                                                      self.op.enabled_disk_templates)
        self.cluster = self.cfg.edit(cluster)

    async def _check_storage_dirs(self, cluster: objects.Cluster) -> None:
        """The storage directory of each enabled file template, after this change: set,
        still holding the disks of the instances that use it (nodes only use disk files
        inside it), and accepted by every node (its state directory, its allowed list)."""
        op = self.op
        enabled = (op.enabled_disk_templates if op.enabled_disk_templates is not None
                   else cluster.enabled_disk_templates)
        ask: dict[str, str] = {}
        for key, template in STORAGE_DIRS.items():
            old = getattr(cluster, key)
            new = self.storage_dirs.get(key, old)
            if template not in enabled:
                continue
            if not new:
                raise errors.WrongInput(
                    f"the {storage_paths.label(key)} can't be empty while the {template} disk "
                    f"template is enabled", f"give {storage_paths.OPTIONS[key]} a directory")
            if new != old:
                check_not_stranded(key, old, new, self.cfg.instances.values())
            if new != old or template not in cluster.enabled_disk_templates:
                ask[key] = new
        if ask:
            await self._ask_nodes(ask)

    async def _ask_nodes(self, dirs: dict[str, str]) -> None:
        """Each online node judges the new directories by its own rules; a node that does
        not answer is warned about (cluster verify reports it once it answers)."""
        nodes = [n for n in self.cfg.sorted_nodes() if not n.offline]
        results = await self.rpc.each(nodes, self.rpc.file_storage_list, dirs=dirs,
                                      files=False)
        for key in dirs:
            refusing = [(n.name, results[n.name].value["refused"][key]) for n in nodes
                        if results[n.name].error is None
                        and key in ((results[n.name].value or {}).get("refused") or {})]
            if refusing:
                name, reason = refusing[0]
                others = ", ".join(n for n, _ in refusing[1:MAX_NAMED + 1])
                raise errors.WrongInput(
                    f"node {name} refuses the {storage_paths.label(key)}: {reason}",
                    (f"{others} too; " if others else "")
                    + "choose a directory every node allows")
        for node in nodes:
            error = results[node.name].error
            if error is not None:
                self.log_warning(f"could not check the storage directories on {node.name} "
                                 f"({error}); run 'gnt-cluster verify' once it answers")

    async def exec(self) -> list[tuple[str, str]]:
        op = self.op
        cluster = self.cluster
        changes: list[tuple[str, str]] = []
        for hv, values in self.hvparams.items():
            cluster.hvparams[hv] = objects.merge_params(cluster.hvparams.get(hv, {}), values)
            changes.append((f"hvparams/{hv}", str(values)))
        if self.beparams is not None:
            cluster.beparams["default"] = objects.merge_params(
                cluster.beparams.get("default", {}), self.beparams)
            changes.append(("beparams", str(self.beparams)))
        if self.nicparams is not None:
            cluster.nicparams["default"] = objects.merge_params(
                cluster.nicparams.get("default", {}), self.nicparams)
            changes.append(("nicparams", str(self.nicparams)))
        if self.ndparams is not None:
            cluster.ndparams = objects.merge_params(cluster.ndparams, self.ndparams)
            changes.append(("ndparams", str(self.ndparams)))
        for template, values in self.diskparams.items():
            cluster.diskparams[template] = objects.merge_params(
                cluster.diskparams.get(template, {}), values)
            changes.append((f"diskparams/{template}", str(values)))
        if op.osparams:
            for os_name, values in op.osparams.items():
                cluster.osparams[os_name] = objects.merge_params(
                    cluster.osparams.get(os_name, {}), values)
        if self.new_ipolicy is not None:
            cluster.ipolicy = self.new_ipolicy
            changes.append(("ipolicy", str(op.ipolicy)))
        simple = {
            "vg_name": "volume_group_name", "enabled_hypervisors": "enabled_hypervisors",
            "enabled_disk_templates": "enabled_disk_templates",
            "master_netdev": "master_netdev", "candidate_pool_size": "candidate_pool_size",
            "mac_prefix": "mac_prefix", "max_running_jobs": "max_running_jobs",
            "max_tracked_jobs": "max_tracked_jobs", "default_iallocator": "default_iallocator",
            "drbd_helper": "drbd_usermode_helper", "os_search_path": "os_search_path",
        }
        for op_name, attr in simple.items():
            value = getattr(op, op_name)
            if value is not None and value != getattr(cluster, attr):
                setattr(cluster, attr, value)
                changes.append((attr, str(value)))
        for key, value in self.storage_dirs.items():
            if value != getattr(cluster, key):
                setattr(cluster, key, value)
                changes.append((key, value))
        pool = cluster.uid_pool
        if "uid_pool" in self.uid_changes:
            pool = self.uid_changes["uid_pool"]
        pool = uidpool.remove(uidpool.add(pool, self.uid_changes.get("add_uids", [])),
                              self.uid_changes.get("remove_uids", []))
        if pool != cluster.uid_pool:
            cluster.uid_pool = pool
            changes.append(("uid_pool", uidpool.format_pool(pool)))
        if op.add_tags:
            cluster.tags = sorted(set(cluster.tags) | set(op.add_tags))
        if op.remove_tags:
            cluster.tags = [t for t in cluster.tags if t not in op.remove_tags]
        update: list[objects.ConfigObject] = [cluster]
        if op.candidate_pool_size is not None:
            # A bigger pool promotes capable nodes at once, as Ganeti does.
            self.cfg.cluster = cluster  # the pool computation reads the new size
            try:
                promote = common.nodes_to_promote(self.cfg)
            finally:
                self.cfg.cluster = self.cfg.get_cluster()
            for node in promote:
                edited = self.cfg.edit(node)
                edited.master_candidate = True
                update.append(edited)
                self.log_info(f"Promoting {node.name} to master candidate")
        await self.cfg.commit(update=update)
        if op.max_running_jobs is not None:
            self.ctx.queue.max_running = op.max_running_jobs
        if self.new_ipolicy is not None:
            instance_policy.warn_violators(self.cfg, self.cfg.instances.values(),
                                           self.log_warning)
        await self.push_node_state()
        return changes


def file_dir_key(dev_type: str) -> str | None:
    """The cluster field holding the storage directory of a file-based disk type."""
    template = disk_templates.TABLE.get(dev_type)
    return template.file_dir if template else None


def check_storage_dir(key: str, value: Any, state_dir: str | None = None) -> str:
    """A --file-storage-dir or --shared-file-storage-dir value in its normal form ("" is
    kept: it unsets the directory), or a one-line WrongInput naming the value and what was
    expected. With ``state_dir`` (gnt-cluster init, on the node itself) the node's own rules
    apply too: its state directory and its list of allowed storage paths."""
    if value == "":
        return ""
    if state_dir is None:
        try:
            return storage_paths.check_syntax(value)
        except storage_paths.PathRefused as err:
            raise errors.WrongInput(f"invalid {storage_paths.label(key)}: {err}") from None
    allowed = storage_paths.read_allowed_paths(state_dir)[0]
    reason = storage_paths.node_reason(value, state_dir, allowed)
    if reason:
        raise errors.WrongInput(f"invalid {storage_paths.label(key)}: {reason}")
    return storage_paths.normal(str(value))


def check_init_storage_dirs(opts: Any, state_dir: str | None = None) -> None:
    """gnt-cluster init's check of its two storage directories (``opts``: bootstrap's
    InitOptions, normalised in place): each one valid, and set when its template is
    enabled."""
    for key, template in STORAGE_DIRS.items():
        value = check_storage_dir(key, getattr(opts, key), state_dir)
        if not value and template in opts.enabled_disk_templates:
            raise errors.WrongInput(
                f"the {storage_paths.label(key)} can't be empty while the {template} disk "
                f"template is enabled", f"give {storage_paths.OPTIONS[key]} a directory")
        setattr(opts, key, value)


def check_not_stranded(key: str, old: str, new: str,
                       instances: Iterable[objects.Instance]) -> None:
    """Refuse a new storage directory that leaves existing disks outside it: disks record
    their absolute path, and nodes use only disk files inside the cluster's directory, so
    those instances could no longer start (a directory that contains the old one is
    fine: every disk stays inside it)."""
    dev_type = STORAGE_DIRS[key]
    base = storage_paths.normal(new)
    stranded = sorted({inst.name for inst in instances for disk in inst.disks
                       if disk.dev_type == dev_type and len(disk.logical_id) == 2
                       and not storage_paths.is_below(
                           storage_paths.normal(str(disk.logical_id[1])), base)})
    if not stranded:
        return
    named = ", ".join(stranded[:MAX_NAMED])
    if len(stranded) > MAX_NAMED:
        named += f" and {len(stranded) - MAX_NAMED} more"
    raise errors.WrongState(
        f"changing the {storage_paths.label(key)} to '{new}' would strand instance(s) "
        f"{named}: their disks are in '{old}', outside it, and could no longer be used",
        "remove those instances first (gnt-instance remove), or choose a directory that "
        f"contains '{old}'")


def file_disk_claims(instances: Iterable[objects.Instance]
                     ) -> tuple[dict[str, set[str]], set[str]]:
    """(node uuid -> paths of the file disks it holds, paths of the sharedfile disks): a
    file disk lives on its instance's primary node, a sharedfile disk on every node."""
    local: dict[str, set[str]] = {}
    shared: set[str] = set()
    for inst in instances:
        for disk in inst.disks:
            if len(disk.logical_id) != 2:
                continue
            path = storage_paths.normal(str(disk.logical_id[1]))
            if disk.dev_type == constants.DT_FILE:
                local.setdefault(inst.primary_node, set()).add(path)
            elif disk.dev_type == constants.DT_SHARED_FILE:
                shared.add(path)
    return local, shared


def volume_claims(instances: Iterable[objects.Instance]) -> dict[str, set[tuple[str, str]]]:
    """node uuid -> the ``(vg, lv)`` of every logical volume an instance's disk uses there:
    plain disks, and the data and metadata volumes under drbd disks (on both nodes)."""
    claims: dict[str, set[tuple[str, str]]] = {}

    def walk(disk: objects.Disk, nodes: list[str]) -> None:
        nodes = list(disk.nodes) or nodes
        if disk.dev_type == constants.DT_PLAIN and len(disk.logical_id) == 2:
            for node in nodes:
                claims.setdefault(node, set()).add(
                    (str(disk.logical_id[0]), str(disk.logical_id[1])))
        for child in disk.children:
            walk(child, nodes)

    for inst in instances:
        for disk in inst.disks:
            walk(disk, [inst.primary_node])
    return claims


def check_mac_prefix(prefix: str) -> None:
    parts = prefix.split(":")
    if len(parts) != 3 or not all(len(p) == 2 and all(c in "0123456789abcdefABCDEF" for c in p)
                                  for p in parts):
        raise errors.WrongInput(f"invalid MAC prefix '{prefix}': expected three hex octets "
                                "like aa:00:00")


@register
class LUClusterRedistConf(LogicalUnit):
    OP = opcodes.OpClusterRedistConf

    def declare_locks(self) -> dict[str, tuple[Any, bool]]:
        return {locks.LEVEL_NODE: (ALL, True)}

    async def exec(self) -> None:
        failed = await self.ctx.master.redistribute(full=True)
        for name, err in sorted(failed.items()):
            self.log_warning(f"could not update node {name}: {err}")
        if failed:
            raise errors.ExecError(f"{len(failed)} node(s) did not take the configuration: "
                                   f"{', '.join(sorted(failed))}")


@register
class LUClusterDestroy(LogicalUnit):
    OP = opcodes.OpClusterDestroy
    BGL_SHARED = False

    async def check_prereq(self) -> None:
        cfg = self.cfg
        master = cfg.get_cluster().master_node
        others = [n.name for n in cfg.sorted_nodes() if n.uuid != master]
        if others:
            raise errors.WrongState(
                f"there are still {len(others)} node(s) in this cluster: {', '.join(others)}",
                "remove them with 'gnt-node remove' first")
        if cfg.instances:
            raise errors.WrongState(
                f"there are still {len(cfg.instances)} instance(s) in this cluster",
                "remove them with 'gnt-instance remove' first")

    async def exec(self) -> None:
        self.log_info("Destroying the cluster; the master daemon stops after this job")
        self.ctx.master.schedule_destroy()
