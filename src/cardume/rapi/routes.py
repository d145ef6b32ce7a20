"""The path table of the Remote API: every resource, its methods and the access each needs.

``lookup(method, path)`` is all the HTTP side asks: the route, or a 404 (unknown path) or
405 (known path, other methods; the ``Allow`` header lists them). The handlers live in one
module per kind of object (cluster, instances, nodes, groups, jobs, query); reads need
``read`` (the blocking GETs /2/jobs/ID/wait and /2/nodes/NAME/storage need ``write``, as in
Ganeti), changes ``write``.
"""

from __future__ import annotations

import re

from cardume.rapi import bodies, cluster, groups, instances, jobs, metrics, nodes, query
from cardume.rapi.base import Access, Handler, RapiError, Route

_TABLE: list[tuple[re.Pattern[str], dict[str, tuple[Handler, Access]]]] = []


def resource(pattern: str, **methods: tuple[Handler, Access]) -> None:
    """Add a resource: ``pattern`` names its parts as ``{instance_name}``; each keyword is a
    method (GET, PUT, POST, DELETE) with its handler and the access it needs."""
    regex = re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", pattern)
    _TABLE.append((re.compile(f"^{regex}$"), methods))


def lookup(method: str, path: str) -> Route:
    for regex, methods in _TABLE:
        match = regex.match(path)
        if match is None:
            continue
        entry = methods.get(method)
        if entry is None:
            allowed = ", ".join(sorted(methods))
            raise RapiError(405, f"method {method} is not supported on {path} "
                                 f"(allowed: {allowed})", headers={"Allow": allowed})
        handler, access = entry
        return Route(handler, access, match.groupdict())
    raise RapiError(404, f"no resource {path}")


R: Access = "read"
W: Access = "write"

# --- cluster ---------------------------------------------------------------------------------
resource("/", GET=(cluster.root, None))
resource("/version", GET=(cluster.version, None))
resource("/metrics", GET=(metrics.metrics, R))  # Prometheus; a read user scrapes
resource("/2", GET=(cluster.root, R))
resource("/2/info", GET=(cluster.info, R))
resource("/2/features", GET=(cluster.features, R))
resource("/2/os", GET=(cluster.operating_systems, R))
resource("/2/tags", GET=(cluster.get_tags, R), PUT=(cluster.put_tags, W),
         DELETE=(cluster.delete_tags, W))
resource("/2/modify", PUT=(cluster.modify, W))
resource("/2/redistribute-config", PUT=(cluster.redistribute_config, W))

# --- instances -------------------------------------------------------------------------------
_I = "/2/instances/{instance_name}"
resource("/2/instances", GET=(instances.list_instances, R), POST=(instances.create, W))
resource("/2/instances-multi-alloc", POST=(instances.multi_alloc, W))
resource(_I, GET=(instances.get_instance, R), DELETE=(instances.delete, W))
resource(f"{_I}/info", GET=(instances.info, R))
resource(f"{_I}/tags", GET=(instances.get_tags, R), PUT=(instances.put_tags, W),
         DELETE=(instances.delete_tags, W))
resource(f"{_I}/reboot", POST=(instances.reboot, W))
resource(f"{_I}/shutdown", PUT=(instances.shutdown, W))
resource(f"{_I}/startup", PUT=(instances.startup, W))
resource(f"{_I}/reinstall", POST=(instances.reinstall, W))
resource(f"{_I}/replace-disks", POST=(instances.replace_disks, W))
resource(f"{_I}/activate-disks", PUT=(instances.activate_disks, W))
resource(f"{_I}/deactivate-disks", PUT=(instances.deactivate_disks, W))
resource(f"{_I}/recreate-disks", POST=(instances.recreate_disks, W))
resource(f"{_I}/disk/{{disk_index}}/grow", POST=(instances.grow_disk, W))
resource(f"{_I}/prepare-export", PUT=(instances.prepare_export, W))
resource(f"{_I}/export", PUT=(instances.export, W))
resource(f"{_I}/migrate", PUT=(instances.migrate, W))
resource(f"{_I}/failover", PUT=(instances.failover, W))
resource(f"{_I}/rename", PUT=(instances.rename, W))
resource(f"{_I}/modify", PUT=(instances.modify, W))
resource(f"{_I}/console", GET=(instances.console, R))

# --- nodes -----------------------------------------------------------------------------------
_N = "/2/nodes/{node_name}"
resource("/2/nodes", GET=(nodes.list_nodes, R))
resource(_N, GET=(nodes.get_node, R))
resource(f"{_N}/role", GET=(nodes.get_role, R), PUT=(nodes.set_role, W))
resource(f"{_N}/evacuate", POST=(nodes.evacuate, W))
resource(f"{_N}/migrate", POST=(nodes.migrate, W))
resource(f"{_N}/modify", POST=(nodes.modify, W))
resource(f"{_N}/powercycle", POST=(nodes.powercycle, W))
resource(f"{_N}/storage", GET=(nodes.storage, W))
resource(f"{_N}/storage/modify", PUT=(nodes.storage_modify, W))
resource(f"{_N}/storage/repair", PUT=(nodes.storage_repair, W))
resource(f"{_N}/tags", GET=(nodes.get_tags, R), PUT=(nodes.put_tags, W),
         DELETE=(nodes.delete_tags, W))

# --- groups ----------------------------------------------------------------------------------
_G = "/2/groups/{group_name}"
resource("/2/groups", GET=(groups.list_groups, R), POST=(groups.create, W))
resource(_G, GET=(groups.get_group, R), DELETE=(groups.delete, W))
resource(f"{_G}/modify", PUT=(groups.modify, W))
resource(f"{_G}/rename", PUT=(groups.rename, W))
resource(f"{_G}/assign-nodes", PUT=(groups.assign_nodes, W))
resource(f"{_G}/tags", GET=(groups.get_tags, R), PUT=(groups.put_tags, W),
         DELETE=(groups.delete_tags, W))

# --- jobs and queries ------------------------------------------------------------------------
resource("/2/jobs", GET=(jobs.list_jobs, R))
resource("/2/jobs/{job_id}", GET=(jobs.get_job, R), DELETE=(jobs.cancel, W))
resource("/2/jobs/{job_id}/wait", GET=(jobs.wait, W))
resource("/2/query/{resource}", GET=(query.query_get, R), PUT=(query.query_put, R))
resource("/2/query/{resource}/fields", GET=(query.query_fields, R))

# --- what cardume does not have yet ----------------------------------------------------------
_NETWORKS = bodies.not_implemented("networks are not in cardume yet")
_FILTERS = bodies.not_implemented("job filters are not in cardume yet")
resource("/2/networks", GET=(_NETWORKS, R), POST=(_NETWORKS, W))
resource("/2/networks/{network_name}", GET=(_NETWORKS, R), DELETE=(_NETWORKS, W))
for _action in ("modify", "connect", "disconnect", "rename"):
    resource(f"/2/networks/{{network_name}}/{_action}", PUT=(_NETWORKS, W))
resource("/2/networks/{network_name}/tags", GET=(_NETWORKS, R), PUT=(_NETWORKS, W),
         DELETE=(_NETWORKS, W))
resource("/2/filters", GET=(_FILTERS, R), POST=(_FILTERS, W))
resource("/2/filters/{filter_uuid}", GET=(_FILTERS, R), PUT=(_FILTERS, W),
         DELETE=(_FILTERS, W))
