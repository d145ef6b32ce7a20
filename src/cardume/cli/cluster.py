"""gnt-cluster: create, inspect, verify, modify and destroy the cluster."""

from __future__ import annotations

import argparse
import os
import sys

from cardume import __version__, constants, errors, paths
from cardume.cli import balance, cluster_crypto, common, ipolicy, options
from cardume.config import schema as config_schema
from cardume.master.client import Client

TYPE_CHECKING = False  # `typing` costs every CLI start ~3 ms; only mypy needs it here
if TYPE_CHECKING:
    from typing import Any


def _add_param_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--enabled-hypervisors", help="comma-separated hypervisors")
    p.add_argument("--enabled-disk-templates", help="comma-separated disk templates")
    p.add_argument("--file-storage-dir", help="directory of file disks")
    p.add_argument("--shared-file-storage-dir", help="directory of sharedfile disks")
    p.add_argument("--vg-name", help="LVM volume group of plain and drbd disks")
    p.add_argument("-B", "--backend-parameters", dest="beparams", help="backend defaults")
    p.add_argument("-H", "--hypervisor-parameters", dest="hvparams", action="append",
                   default=[], help="hypervisor defaults, HV:k=v,...")
    p.add_argument("-N", "--nic-parameters", dest="nicparams", help="NIC defaults")
    p.add_argument("--node-parameters", dest="ndparams", help="node defaults")
    p.add_argument("-D", "--disk-parameters", dest="diskparams", action="append", default=[],
                   help="disk defaults, TEMPLATE:k=v,...")
    p.add_argument("--master-netdev", help="network device of the master IP")
    p.add_argument("--mac-prefix", help="prefix of generated MAC addresses")
    p.add_argument("-C", "--candidate-pool-size", type=int, help="master candidates wanted")
    p.add_argument("--uid-pool", help="uids (and LOW-HIGH ranges) kvm instances with "
                   "security_model=pool run as, e.g. 4000-4099")
    p.add_argument("--os-search-path", help="colon-separated directories searched for OS "
                   "definitions (default: Ganeti's four)")
    ipolicy.add_options(p, std=True)


def build(sub: Any) -> None:
    p = sub.add_parser("init", help="create a cluster with this node as master")
    _add_param_options(p)
    p.add_argument("--master-netmask", type=int, help="netmask of the master IP")
    p.add_argument("-s", "--secondary-ip", help="this node's replication address")
    p.add_argument("--hosts-file", help="a hosts file the cluster resolves names with first")
    p.add_argument("--no-etc-hosts", action="store_true", help="accepted for compatibility")
    p.add_argument("--no-ssh-init", action="store_true", help="accepted (no SSH is used)")
    p.add_argument("--max-running-jobs", type=int, help="jobs allowed to run at once")
    p.add_argument("-I", "--default-iallocator",
                   help="default instance allocator (default: cardume, the built-in one)")
    p.add_argument("cluster_name", help="name of the cluster")
    p.set_defaults(func=init)

    p = sub.add_parser("modify", help="change cluster parameters")
    _add_param_options(p)
    p.add_argument("--max-running-jobs", type=int, help="jobs allowed to run at once")
    p.add_argument("--max-tracked-jobs", type=int, help="jobs tracked at once")
    p.add_argument("--add-uids", help="uids (and LOW-HIGH ranges) added to the uid pool")
    p.add_argument("--remove-uids", help="uids (and LOW-HIGH ranges) taken from the uid pool")
    p.add_argument("-I", "--default-iallocator", help="default instance allocator")
    options.add_job_options(p)
    p.set_defaults(func=modify)

    for name in ("info", "show"):
        p = sub.add_parser(name, help="show the cluster configuration")
        options.ROMAN.add(p)
        p.set_defaults(func=info)

    p = sub.add_parser("verify", help="check the health of the cluster")
    p.add_argument("--error-codes", action="store_true", help="machine-parsable error lines")
    p.add_argument("-I", "--ignore-errors", action="append", default=[],
                   help="report this error code as a warning")
    p.add_argument("--node-group", help="verify only this group")
    p.add_argument("--verbose", action="store_true", help="verbose output")
    p.add_argument("--no-nplus1-mem", action="store_true", help="skip the N+1 memory check")
    options.add_job_options(p)
    p.set_defaults(func=verify)

    p = sub.add_parser("verify-disks", help="find degraded or disconnected mirrors and "
                       "reconnect them; report split brains and failed disks")
    p.add_argument("--node-group", help="only the instances of this node group")
    options.add_job_options(p)
    p.set_defaults(func=verify_disks)

    p = sub.add_parser("watch-disks", help="watch the DRBD replication of every instance, "
                       "live (as gnt-instance watch-disks)")
    if isinstance(p, argparse.ArgumentParser):  # the DRBD views only when it is run
        from cardume.cli import drbd
        drbd.add_watch_options(p, names=False)
        p.set_defaults(func=drbd.watch)

    p = sub.add_parser("getmaster", help="print the master node")
    p.set_defaults(func=getmaster)
    p = sub.add_parser("master-ping", help="exit 0 if the master daemon answers")
    p.set_defaults(func=master_ping)
    p = sub.add_parser("version", help="print the software versions")
    p.set_defaults(func=version)

    p = sub.add_parser("queue", help="drain, undrain or inspect the job queue")
    p.add_argument("action", choices=["drain", "undrain", "info"], help="what to do")
    p.set_defaults(func=queue)

    p = sub.add_parser("redist-conf", help="push the configuration to every node again")
    options.add_job_options(p)
    p.set_defaults(func=redist_conf)

    for name in ("master-failover", "masterfailover"):
        p = sub.add_parser(name, help="make this node (a master candidate) the master")
        p.add_argument("--no-voting", action="store_true",
                       help="don't require a majority of candidates to answer")
        options.YES_DO_IT.add(p, help="confirm --no-voting")
        p.add_argument("--ignore-offline-nodes", action="store_true",
                       help="accepted for compatibility")
        p.set_defaults(func=master_failover)

    p = sub.add_parser("destroy", help="destroy the cluster (only the master may remain)")
    options.YES_DO_IT.add(p, help="confirm the destruction")
    p.set_defaults(func=destroy)

    cluster_crypto.build(sub)  # renew-crypto
    balance.build(sub)  # balance, capacity
    from cardume.cli import watcher
    watcher.build(sub)  # watcher {pause DURATION, continue, info}
    common.add_tag_commands(sub, "the cluster", None, tags)


def _split(text: str | None) -> list[str] | None:
    from cardume.cli.params import parse_names_list
    return parse_names_list(text) if text else None


def _hv_and_disk(args: argparse.Namespace) -> tuple[dict[str, Any], dict[str, Any]]:
    from cardume.cli.params import parse_ident_kv
    hvparams: dict[str, Any] = {}
    for text in args.hvparams:
        hv, values = parse_ident_kv(text)
        if not isinstance(values, dict):
            raise errors.WrongInput(f"-H {text}: expected HYPERVISOR:key=value,...")
        hvparams.setdefault(hv, {}).update(values)
    diskparams: dict[str, Any] = {}
    for text in args.diskparams:
        template, values = parse_ident_kv(text)
        if not isinstance(values, dict):
            raise errors.WrongInput(f"-D {text}: expected TEMPLATE:key=value,...")
        diskparams.setdefault(template, {}).update(values)
    return hvparams, diskparams


def init(args: argparse.Namespace) -> int:
    from cardume import uidpool
    from cardume.cli.params import parse_kv, parse_names_list
    from cardume.master.bootstrap import InitOptions, init_cluster
    hvparams, diskparams = _hv_and_disk(args)
    opts = InitOptions(cluster_name=args.cluster_name, hvparams=hvparams,
                       diskparams=diskparams)
    if args.enabled_hypervisors:
        opts.enabled_hypervisors = parse_names_list(args.enabled_hypervisors)
    if args.enabled_disk_templates:
        opts.enabled_disk_templates = parse_names_list(args.enabled_disk_templates)
    for attr in ("file_storage_dir", "shared_file_storage_dir", "vg_name", "master_netdev",
                 "master_netmask", "secondary_ip", "mac_prefix", "candidate_pool_size",
                 "hosts_file", "max_running_jobs", "default_iallocator"):
        value = getattr(args, attr)
        if value is not None:
            setattr(opts, attr, value)
    if args.os_search_path:
        opts.os_search_path = _search_path(args.os_search_path)
    if args.uid_pool is not None:
        opts.uid_pool = uidpool.parse(args.uid_pool)
    opts.beparams = dict(parse_kv(args.beparams or ""))
    opts.nicparams = dict(parse_kv(args.nicparams or ""))
    opts.ndparams = dict(parse_kv(args.ndparams or ""))
    opts.ipolicy = ipolicy.from_args(args) or {}
    local = paths.local_node_paths()
    init_cluster(local, opts)
    return 0


def _search_path(text: str) -> list[str]:
    entries = [p for p in text.split(":") if p]
    for entry in entries:
        if not os.path.isabs(entry):
            raise errors.WrongInput(f"OS search path entry '{entry}' must be an absolute path")
    return entries


def modify(args: argparse.Namespace) -> int:
    from cardume import uidpool
    from cardume.cli.params import parse_kv
    hvparams, diskparams = _hv_and_disk(args)
    op: dict[str, Any] = {"OP_ID": "OP_CLUSTER_SET_PARAMS"}
    if hvparams:
        op["hvparams"] = hvparams
    if diskparams:
        op["diskparams"] = diskparams
    for attr in ("beparams", "nicparams", "ndparams"):
        text = getattr(args, attr)
        if text is not None:
            op[attr] = dict(parse_kv(text))
    if args.enabled_hypervisors:
        op["enabled_hypervisors"] = _split(args.enabled_hypervisors)
    if args.enabled_disk_templates:
        op["enabled_disk_templates"] = _split(args.enabled_disk_templates)
    for attr in ("file_storage_dir", "shared_file_storage_dir", "vg_name", "master_netdev",
                 "mac_prefix", "candidate_pool_size", "max_running_jobs",
                 "max_tracked_jobs", "default_iallocator"):
        value = getattr(args, attr)
        if value is not None:
            op[attr] = value
    if args.os_search_path is not None:
        op["os_search_path"] = _search_path(args.os_search_path)
    for attr in ("uid_pool", "add_uids", "remove_uids"):
        if getattr(args, attr) is not None:
            op[attr] = uidpool.parse(getattr(args, attr))
    policy = ipolicy.from_args(args)
    if policy is not None:
        op["ipolicy"] = policy
    if len(op) == 1:
        raise errors.WrongInput("please give at least one of the parameters to modify")
    common.run_job(args, [op])
    return 0


def info(args: argparse.Namespace) -> int:
    from cardume.cli import infodoc
    with Client() as client:
        data = client.call("QueryClusterInfo")
    print(infodoc.render(format_cluster_info(data)))
    return 0


def format_cluster_info(data: dict[str, Any]) -> list[tuple[str, Any]]:
    """The cluster's document, in Ganeti's order, from a QueryClusterInfo answer. What
    cardume has no such thing as shows as Ganeti shows it unused: no reserved volumes, no
    external master IP script, no ExtStorage providers, images or SSH key set-up, no
    compression tools, no data collectors."""
    from cardume import uidpool
    from cardume.cli import infodoc
    enabled = list(data["enabled_hypervisors"])
    hvparams = {hv: values for hv, values in (data.get("hvparams_filled") or {}).items()
                if hv in enabled}
    arch = data.get("architecture") or _local_architecture()
    return [
        ("Cluster name", data["name"]),
        ("Cluster UUID", data["uuid"]),
        ("Creation time", infodoc.timestamp(data.get("ctime"))),
        ("Modification time", infodoc.timestamp(data.get("mtime"))),
        ("Master node", data["master"]),
        ("Architecture (this node)", f"{arch[0]} ({arch[1]})"),
        ("Tags", infodoc.comma(infodoc.nice_sorted(data.get("tags") or [])) or "(none)"),
        ("Default hypervisor", data["default_hypervisor"]),
        ("Enabled hypervisors", infodoc.comma(enabled)),
        ("Hypervisor parameters", infodoc.grouped(hvparams)),
        ("OS-specific hypervisor parameters", infodoc.grouped(data.get("os_hvp") or {})),
        ("OS parameters", infodoc.grouped(data.get("osparams") or {})),
        ("Hidden OSes", infodoc.comma(data.get("hidden_os"))),
        ("Blacklisted OSes", infodoc.comma(data.get("blacklisted_os"))),
        ("Cluster parameters", [
            ("candidate pool size", data["candidate_pool_size"]),
            ("maximal number of jobs running simultaneously", data["max_running_jobs"]),
            ("maximal number of jobs simultaneously tracked by the scheduler",
             data["max_tracked_jobs"]),
            ("mac prefix", data["mac_prefix"]),
            ("master netdev", data["master_netdev"]),
            ("master netmask", data["master_netmask"]),
            ("use external master IP address setup script",
             data.get("use_external_mip_script", False)),
            ("lvm volume group", data.get("volume_group_name")),
            ("lvm reserved volumes", infodoc.comma(data.get("reserved_lvs")) or "(none)"),
            ("drbd usermode helper", data.get("drbd_usermode_helper")),
            ("file storage path", data["file_storage_dir"]),
            ("shared file storage path", data["shared_file_storage_dir"]),
            ("gluster storage path", data.get("gluster_storage_dir", "")),
            ("maintenance of node health", data.get("maintain_node_health", False)),
            ("uid pool", uidpool.format_pool(data.get("uid_pool") or [])),
            ("default instance allocator", data.get("default_iallocator", "")),
            ("default instance allocator parameters",
             data.get("default_iallocator_params") or {}),
            ("primary ip version", data.get("primary_ip_family", 4)),
            ("preallocation wipe disks", data.get("prealloc_wipe_disks", False)),
            ("OS search path", infodoc.comma(data.get("os_search_path") or _default_os_path())),
            ("ExtStorage Providers search path", infodoc.comma(data.get("es_search_path"))),
            ("enabled disk templates", infodoc.comma(data["enabled_disk_templates"])),
            ("install image", data.get("install_image", "")),
            ("instance communication network", data.get("instance_communication_network", "")),
            ("zeroing image", data.get("zeroing_image", "")),
            ("compression tools", list(data.get("compression_tools") or [])),
            ("enabled user shutdown", data.get("enabled_user_shutdown", False)),
            # cardume's nodes talk TLS, never SSH: it changes no SSH set-up, has no key
            ("modify ssh setup", data.get("modify_ssh_setup", False)),
            ("ssh_key_type", data.get("ssh_key_type")),
            ("ssh_key_bits", data.get("ssh_key_bits")),
        ]),
        ("Default node parameters", infodoc.grouped(data.get("ndparams_filled") or {})),
        ("Default instance parameters",
         infodoc.grouped({"default": data.get("beparams_filled") or {}})),
        ("Default nic parameters",
         infodoc.grouped({"default": data.get("nicparams_filled") or {}})),
        ("Default disk parameters", infodoc.grouped(data.get("diskparams_filled") or {})),
        ("Instance policy - limits for instances",
         infodoc.policy(data.get("ipolicy_filled") or {}, {}, cluster=True)),
        ("Data collectors", _data_collectors(data)),
    ]


def _data_collectors(data: dict[str, Any]) -> dict[str, Any]:
    """Ganeti's monitoring daemon's collectors: cardume has no such daemon, so the mapping
    is empty unless the master names some."""
    enabled = data.get("enabled_data_collectors") or {}
    interval = data.get("data_collector_interval") or {}
    return {name: {"active": active, "interval": f"{interval.get(name, 0) / 1e6:.3f}s"}
            for name, active in enabled.items()}


def _local_architecture() -> list[str]:
    """This node's (a master that does not say its own)."""
    import platform
    import struct
    return [f"{struct.calcsize('P') * 8}bits", platform.machine()]


def _default_os_path() -> list[str]:
    return ["/srv/ganeti/os", "/usr/local/lib/ganeti/os", "/usr/lib/ganeti/os",
            "/usr/share/ganeti/os"]


def verify(args: argparse.Namespace) -> int:
    op = {"OP_ID": "OP_CLUSTER_VERIFY", "error_codes": args.error_codes,
          "ignore_errors": args.ignore_errors, "group_name": args.node_group,
          "verbose": args.verbose}
    result = common.run_job(args, [op])
    if result is None:
        return 0
    return 0 if result[0] else 1


def verify_disks(args: argparse.Namespace) -> int:
    """Exit 0 when every active mirror is (or was made) healthy, 1 when a problem needs
    the admin: a split brain, a failed disk, a mirror that would not reconnect, a node
    that did not answer."""
    result = common.run_job(args, [{"OP_ID": "OP_CLUSTER_VERIFY_DISKS",
                                    "group_name": args.node_group}])
    if not result:
        return 0
    found = result[0]
    if found["reconnected"]:
        print(f"Reconnected the disks of instance(s) {', '.join(found['reconnected'])}")
    else:
        print("No disks need to be activated.")
    left = [found[k] for k in ("split_brain", "failed_disks", "degraded", "node_errors")]
    return 1 if any(left) else 0


def getmaster(args: argparse.Namespace) -> int:
    ssconf = _local_ssconf()
    print(ssconf["master_node"])
    return 0


def _local_ssconf() -> dict[str, Any]:
    local = paths.local_node_paths()
    ssconf = local.read_ssconf()
    if not ssconf:
        raise errors.NotCluster("this node is not part of a cluster",
                                "run 'gnt-cluster init' or 'gnt-node add' first")
    return ssconf


def master_ping(args: argparse.Namespace) -> int:
    with Client() as client:
        client.call("Ping")
    return 0


def version(args: argparse.Namespace) -> int:
    print(f"Software version: {__version__}")
    print(f"Internode protocol: {constants.PROTOCOL_VERSION}")
    print(f"Configuration format: {config_schema.VERSION}")
    print("OS api version: 20")
    print("Export interface: 0")
    print("VCS version: (cardume)")
    return 0


def queue(args: argparse.Namespace) -> int:
    with Client() as client:
        if args.action == "info":
            data = client.call("QueueInfo")
            print(f"The drain flag is {'set' if data['drained'] else 'unset'}")
            return 0
        client.call("SetDrainFlag", args.action == "drain")
    return 0


def redist_conf(args: argparse.Namespace) -> int:
    common.run_job(args, [{"OP_ID": "OP_CLUSTER_REDIST_CONF"}])
    return 0


def master_failover(args: argparse.Namespace) -> int:
    from cardume.master.bootstrap import master_failover as failover
    if args.no_voting and not args.yes_do_it and not common.confirm(
            "Master failover without voting can leave two masters if the old one is "
            "still up. Continue?"):
        print("Master failover without voting needs --yes-do-it (or a 'y' at the prompt)",
              file=sys.stderr)
        return 1
    env = dict(os.environ)
    local = paths.NodePaths(os.path.join(env[paths.ENV_ROOT], "nodes", env[paths.ENV_NODE])) \
        if env.get(paths.ENV_ROOT) and env.get(paths.ENV_NODE) else paths.local_node_paths()
    for line in failover(local, no_voting=args.no_voting):
        print(line)
    return 0


def destroy(args: argparse.Namespace) -> int:
    if not args.yes_do_it:
        raise errors.WrongInput("destroying the cluster needs --yes-do-it")
    common.run_job(args, [{"OP_ID": "OP_CLUSTER_DESTROY"}])
    return 0


def tags(args: argparse.Namespace) -> int:
    if args.action == "list-tags":
        with Client() as client:
            data = client.call("QueryClusterInfo")
        for tag in sorted(data["tags"]):
            print(tag)
        return 0
    op_id = "OP_TAGS_SET" if args.action == "add-tags" else "OP_TAGS_DEL"
    common.run_job(args, [{"OP_ID": op_id, "kind": "cluster", "tags": args.tags}])
    return 0
