"""cardume: local clusters (vcluster) and node-side helpers."""

from __future__ import annotations

import argparse
import os
from typing import Any

from cardume import paths


def build(sub: Any) -> None:
    p = sub.add_parser("vcluster", help="a whole cluster on this machine (loopback addresses)")
    vsub = p.add_subparsers(dest="vcommand", metavar="ACTION", required=True)
    up = vsub.add_parser("up", help="start (or restart) a local cluster",
                         description="Start a local cluster, or start again whatever of an "
                         "existing one is not running.")
    up.add_argument("--nodes", type=int, help="number of nodes: a new cluster gets 3 by "
                    "default; an existing one keeps its size, grows to a larger number, and "
                    "refuses a smaller one (nodes are never removed)")
    up.add_argument("--root", required=True, help="state directory of the cluster")
    up.add_argument("--base-ip", help="address of node1 (default: the first free "
                    "127.0.N.11, remembered for the root)")
    up.add_argument("--port", type=int, default=1811, help="node daemon port")
    up.add_argument("--name", default="cluster.vcluster", help="cluster name")
    up.set_defaults(func=vcluster_up)
    down = vsub.add_parser("down", help="stop a local cluster")
    down.add_argument("--root", required=True, help="state directory of the cluster")
    down.add_argument("--purge", action="store_true", help="also delete its state")
    down.set_defaults(func=vcluster_down)
    status = vsub.add_parser("status", help="show the daemons of a local cluster")
    status.add_argument("--root", required=True, help="state directory of the cluster")
    status.set_defaults(func=vcluster_status)

    p = sub.add_parser("console", help="attach to the serial console of a kvm instance "
                       "(through the node daemon; Ctrl-] ends it)")
    p.add_argument("--node", required=True, help="the node running the instance")
    p.add_argument("--instance", required=True, help="the instance's name")
    p.add_argument("--linger", type=float, default=1.0,
                   help="without a terminal: seconds to wait for output once stdin ends")
    p.set_defaults(func=console)

    p = sub.add_parser("node", help="node-side helpers")
    nsub = p.add_subparsers(dest="ncommand", metavar="ACTION", required=True)
    token = nsub.add_parser("join-token", help="print this node's join token")
    token.add_argument("--root", help="the node's state directory (default: this node's)")
    token.set_defaults(func=node_join_token)


def vcluster_up(args: argparse.Namespace) -> int:
    from cardume.vcluster import VCluster
    cluster = VCluster(args.root, base_ip=args.base_ip, port=args.port)
    for line in cluster.up(args.nodes, cluster_name=args.name):
        print(line)
    size = cluster.size()
    print(f"Local cluster with {size} node{'s' if size != 1 else ''} is up. Use it with:")
    print(f"  export CARDUME_ROOT={cluster.root}")
    print("  gnt-node list")
    return 0


def vcluster_down(args: argparse.Namespace) -> int:
    from cardume.vcluster import VCluster
    for line in VCluster(args.root).down(purge=args.purge):
        print(line)
    return 0


def vcluster_status(args: argparse.Namespace) -> int:
    from cardume.vcluster import VCluster
    for line in VCluster(args.root).status():
        print(line)
    return 0


def node_join_token(args: argparse.Namespace) -> int:
    from cardume.node.daemon import join_token
    local = paths.NodePaths(os.path.abspath(args.root)) if args.root \
        else paths.local_node_paths()
    print(join_token(local))
    return 0


def console(args: argparse.Namespace) -> int:
    from cardume.node.console import run_console
    return run_console(paths.local_node_paths(), args.node, args.instance, args.linger)
