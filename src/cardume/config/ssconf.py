"""ssconf: the small cluster summary every node keeps (who is master, where nodes are).

Nodes read it to find the master, to know the storage directories and OS search path, and
to accept state changes only from the master. It is rebuilt from the configuration and
pushed to every node after each change to nodes or cluster settings.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from cardume import objects

DEFAULT_OS_SEARCH_PATH = ["/srv/ganeti/os", "/usr/local/lib/ganeti/os", "/usr/lib/ganeti/os",
                          "/usr/share/ganeti/os"]


def build(cluster: objects.Cluster, nodes: Iterable[objects.Node], serial: int,
          ) -> dict[str, Any]:
    by_uuid = {n.uuid: n for n in nodes}
    master = by_uuid[cluster.master_node]
    return {
        "cluster_name": cluster.cluster_name,
        "master_node": master.name,
        "master_ip": master.primary_ip,
        "serial": serial,
        "noded_port": cluster.noded_port,
        "hosts_file": cluster.hosts_file,
        "file_storage_dir": cluster.file_storage_dir,
        "shared_file_storage_dir": cluster.shared_file_storage_dir,
        "volume_group_name": cluster.volume_group_name,
        "os_search_path": cluster.os_search_path or DEFAULT_OS_SEARCH_PATH,
        "enabled_hypervisors": cluster.enabled_hypervisors,
        "enabled_disk_templates": cluster.enabled_disk_templates,
        "nodes": {n.name: {"ip": n.primary_ip, "secondary_ip": n.secondary_ip,
                           "port": n.port, "master_candidate": n.master_candidate,
                           "offline": n.offline, "drained": n.drained}
                  for n in by_uuid.values()},
    }
