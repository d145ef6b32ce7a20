"""The table of master→node calls: name, timeout class, and what it does.

Every call a node daemon serves is listed here; the client refuses names that are not,
so a typo fails at once instead of as a 404 from every node.
"""

from __future__ import annotations

from dataclasses import dataclass

# Timeout classes, in seconds. A node that is down refuses the connection at once; these
# bound how long a node that hangs can hold up a job.
TIMEOUTS = {
    "urgent": 10.0,
    "fast": 60.0,
    "normal": 900.0,
    "slow": 1800.0,
    "4hrs": 4 * 3600.0,
    "1day": 86400.0,
}


@dataclass(frozen=True, slots=True)
class Call:
    name: str
    timeout: str
    doc: str
    public: bool = False  # served before the node has joined a cluster

    @property
    def seconds(self) -> float:
        return TIMEOUTS[self.timeout]


CALLS: dict[str, Call] = {c.name: c for c in (
    Call("version", "urgent", "protocol and software version of the node daemon", public=True),
    Call("join", "fast", "join the cluster: install the CA, the node certificate, ssconf",
         public=True),
    Call("leave", "fast", "forget the cluster: drop certificates, replica and ssconf"),
    Call("node_info", "urgent", "memory, CPUs, storage space, hypervisors of the node"),
    Call("node_verify", "fast", "run the node-local checks of cluster verify"),
    Call("ssconf_write", "fast", "store the cluster summary every node keeps"),
    Call("config_apply", "fast", "apply one config change set to the local replica"),
    Call("config_replace", "normal", "replace the local replica whole"),
    Call("config_serial", "urgent", "serial number of the local replica"),
    Call("config_dump", "normal", "the local replica as one document"),
    Call("master_stop", "fast", "stop the master daemon on this node"),
    Call("test_delay", "normal", "sleep for a while (gnt-debug delay -n)"),
)}
