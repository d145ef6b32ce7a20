"""Logical units, one module per area; importing this package registers them all."""

from cardume.cmdlib import cluster, group, misc, node  # noqa: F401
