"""What the master's socket server and queries read from the running master daemon.

A protocol rather than the daemon class, so neither module imports the daemon that starts
them (the daemon imports them).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from cardume.config.writer import ConfigWriter
    from cardume.jobs.locks import LockManager
    from cardume.jobs.queue import JobQueue
    from cardume.jobs.replication import QueueReplicator
    from cardume.rpc.client import NodeRpc


class MasterView(Protocol):
    cfg: ConfigWriter
    rpc: NodeRpc
    locks: LockManager
    queue: JobQueue
    queue_replicator: QueueReplicator
