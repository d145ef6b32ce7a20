"""Logical units, one module per area; importing this package registers them all."""

from cardume.cmdlib import (  # noqa: F401
    allocator_debug,
    backup,
    cluster,
    cluster_balance,
    group,
    instance,
    instance_change_group,
    instance_create,
    instance_migrate,
    instance_multi_alloc,
    instance_ops,
    instance_query,
    instance_replace,
    instance_setparams,
    misc,
    network,
    node,
    node_evacuate,
    node_storage,
    verify_disks,
)
