"""The YAML-like documents of the gnt-* info commands (cli/infodoc.py and the document
builders of gnt-node, gnt-group, gnt-job and gnt-cluster info): given the data the real
Ganeti 3.0.2 had, they print its text to the character, trailing spaces included."""

from __future__ import annotations

import time
from typing import Any

from cardume.cli import cluster as gnt_cluster
from cardume.cli import group as gnt_group
from cardume.cli import infodoc
from cardume.cli import job as gnt_job
from cardume.cli import node as gnt_node

# --- the printer ----------------------------------------------------------------------------


def test_pairs_keep_their_order_and_dicts_are_sorted() -> None:
    doc = [("Name", "x"), ("Params", {"b": "2", "a": "1"}), ("Last", 3)]
    assert infodoc.render(doc) == "Name: x\nParams: \n  a: 1\n  b: 2\nLast: 3"


def test_a_list_of_documents_and_nested_lists() -> None:
    doc = [[("Node name", "n1"), ("primary for instances", ["vm1", "vm2"])],
           [("Node name", "n2"), ("primary for instances", [])]]
    assert infodoc.render(doc) == (
        "- Node name: n1\n"
        "  primary for instances: \n"
        "    - vm1\n"
        "    - vm2\n"
        "- Node name: n2\n"
        "  primary for instances: ")
    reason = [("reason", [["gnt:client", "add", 17], ["gnt:opcode", "job=2"]])]
    assert infodoc.render(reason) == (
        "reason: \n"
        "  - - gnt:client\n"
        "    - add\n"
        "    - 17\n"
        "  - - gnt:opcode\n"
        "    - job=2")


def test_empty_containers_keep_the_key_and_its_space() -> None:
    doc = [("Disks", []), ("Hypervisor parameters", {}), ("nics", [{}]), ("x", "")]
    assert infodoc.render(doc) == "Disks: \nHypervisor parameters: \nnics: \n  - \nx: "


def test_a_list_of_pairs_inside_a_list_continues_after_the_dash() -> None:
    doc = [("Nodes", [[("primary", "node1"), ("group", "default")],
                      [("secondaries", "")]])]
    assert infodoc.render(doc) == (
        "Nodes: \n  - primary: node1\n    group: default\n  - secondaries: ")


def test_inline_tuples_aligned_groups_and_plain_values() -> None:
    doc = [("Received", "t0", "ts"), ("Processing start", "t1", "ts"),
           ("Content", (1, "message", "hello")), ("flag", True), ("none", None),
           ("ratio", 4.0), ("speed", 1.5)]
    assert infodoc.render(doc).splitlines() == [
        "Received:         t0",
        "Processing start: t1",
        "Content: [1, message, hello]",
        "flag: True",
        "none: None",
        "ratio: 4",
        "speed: 1.5",
    ]


def test_params_own_values_and_inherited_defaults() -> None:
    shown = infodoc.params({"vcpus": 2, "drbd": {"protocol": "A"}},
                           {"vcpus": 2, "maxmem": 128, "plain": {}, "file": {},
                            "drbd": {"protocol": "A", "resync-rate": 61440},
                            "cpu_speed": 1.0, "oob_program": ""})
    assert shown == {"vcpus": "2", "maxmem": "default (128)", "plain": "default ({})",
                     "file": "default ({})",
                     "drbd": {"protocol": "A", "resync-rate": "default (61440)"},
                     "cpu_speed": "default (1)", "oob_program": "default ()"}


def test_times_and_natural_order() -> None:
    moment = time.mktime((2026, 12, 4, 4, 21, 53, 0, 0, -1))
    assert infodoc.timestamp(moment + 0.7) == "2026-12-04 04:21:53"
    assert infodoc.timestamp(None) == "N/A"
    assert infodoc.timestamp_usecs(moment + 0.411089) == "2026-12-04 04:21:53.411089"
    assert infodoc.timestamp_usecs([int(moment), 5]) == "2026-12-04 04:21:53.000005"
    assert infodoc.timestamp_usecs(None) == "N/A"
    assert infodoc.nice_sorted(["vm10", "vm2", "a", "vm1"]) == ["a", "vm1", "vm2", "vm10"]


# --- the documents, fed what Ganeti had (its capture in tests/fixtures/ganeti-info) ---------

NDPARAMS = {"oob_program": "", "spindle_count": 1, "exclusive_storage": False, "ovs": False,
            "ovs_name": "switch1", "ovs_link": "", "ssh_port": 22, "cpu_speed": 1}

GANETI_NODE = """\
- Node name: node1.gnt.test
  primary ip: 10.77.0.11
  secondary ip: 10.77.0.11
  master candidate: True
  drained: False
  offline: False
  master_capable: True
  vm_capable: True
  primary for instances: 
    - vm1.gnt.test
  secondary for instances: 
  node parameters: 
    cpu_speed: default (1)
    exclusive_storage: default (False)
    oob_program: default ()
    ovs: default (False)
    ovs_link: default ()
    ovs_name: default (switch1)
    spindle_count: default (1)
    ssh_port: default (22)"""  # noqa: W291


def node_row(**changes: Any) -> dict[str, Any]:
    row = {"name": "node1.gnt.test", "pip": "10.77.0.11", "sip": "10.77.0.11",
           "pinst_list": ["vm1.gnt.test"], "sinst_list": [], "master_candidate": True,
           "drained": False, "offline": False, "master_capable": True, "vm_capable": True,
           "powered": True, "ndparams": dict(NDPARAMS), "custom_ndparams": {}}
    row.update(changes)
    return row


def test_node_info_is_ganetis_text() -> None:
    assert infodoc.render([gnt_node.format_node_info(node_row())]) == GANETI_NODE


def test_node_info_power_and_instances_only_where_they_mean_something() -> None:
    text = infodoc.render([gnt_node.format_node_info(node_row(vm_capable=False))])
    assert "for instances" not in text and "powered" not in text
    oob = dict(NDPARAMS, oob_program="/bin/oob")
    lines = infodoc.render([gnt_node.format_node_info(
        node_row(ndparams=oob, custom_ndparams={"oob_program": "/bin/oob"}))]).splitlines()
    assert lines[6:8] == ["  powered: True", "  master_capable: True"]
    assert "    oob_program: /bin/oob" in lines


DRBD_PARAMS = {"c-delay-target": 1, "c-fill-target": 0, "c-max-rate": 61440,
               "c-min-rate": 4096, "c-plan-ahead": 20, "data-stripes": 1,
               "disk-barriers": "n", "disk-custom": "", "dynamic-resync": False,
               "meta-barriers": False, "meta-stripes": 1, "metavg": "xenvg",
               "net-custom": "", "protocol": "C", "resync-rate": 61440}
DISKPARAMS = {"blockdev": {}, "diskless": {}, "drbd": DRBD_PARAMS,
              "ext": {"access": "kernelspace"}, "file": {},
              "gluster": {"access": "kernelspace", "host": "127.0.0.1", "port": 24007,
                          "volume": "gv0"},
              "plain": {"stripes": 1}, "rbd": {"access": "kernelspace", "pool": "rbd"},
              "sharedfile": {}}
SPECS_MIN = {"memory-size": 128, "disk-size": 1024, "disk-count": 1, "cpu-count": 1,
             "nic-count": 1, "spindle-use": 1}
SPECS_MAX = {"memory-size": 32768, "disk-size": 1048576, "disk-count": 16, "cpu-count": 8,
             "nic-count": 8, "spindle-use": 12}
IPOLICY = {"minmax": [{"min": SPECS_MIN, "max": SPECS_MAX}], "std": SPECS_MIN,
           "spindle-ratio": 32, "vcpu-ratio": 4,
           "disk-templates": ["file", "diskless", "sharedfile"]}


GANETI_GROUP = """\
- Node group: default
  Node parameters: 
    cpu_speed: default (1)
    exclusive_storage: default (False)
    oob_program: default ()
    ovs: default (False)
    ovs_link: default ()
    ovs_name: default (switch1)
    spindle_count: default (1)
    ssh_port: default (22)
  Disk parameters: 
    blockdev: default ({})
    diskless: default ({})
    drbd: 
      c-delay-target: default (1)
      c-fill-target: default (0)
      c-max-rate: default (61440)
      c-min-rate: default (4096)
      c-plan-ahead: default (20)
      data-stripes: default (1)
      disk-barriers: default (n)
      disk-custom: default ()
      dynamic-resync: default (False)
      meta-barriers: default (False)
      meta-stripes: default (1)
      metavg: default (xenvg)
      net-custom: default ()
      protocol: default (C)
      resync-rate: default (61440)
    ext: 
      access: default (kernelspace)
    file: default ({})
    gluster: 
      access: default (kernelspace)
      host: default (127.0.0.1)
      port: default (24007)
      volume: default (gv0)
    plain: 
      stripes: default (1)
    rbd: 
      access: default (kernelspace)
      pool: default (rbd)
    sharedfile: default ({})
  Instance policy: 
    bounds specs: 
      - min/0: 
          cpu-count: default (1)
          disk-count: default (1)
          disk-size: default (1024)
          memory-size: default (128)
          nic-count: default (1)
          spindle-use: default (1)
        max/0: 
          cpu-count: default (8)
          disk-count: default (16)
          disk-size: default (1048576)
          memory-size: default (32768)
          nic-count: default (8)
          spindle-use: default (12)
    allowed disk templates: default (file, diskless, sharedfile)
    vcpu-ratio: default (4)
    spindle-ratio: default (32)"""  # noqa: W291


def test_group_info_is_ganetis_text() -> None:
    row = {"name": "default", "ndparams": NDPARAMS, "custom_ndparams": {},
           "diskparams": DISKPARAMS, "custom_diskparams": {}, "ipolicy": IPOLICY,
           "custom_ipolicy": {}}
    assert infodoc.render([gnt_group.format_group_info(row)]) == GANETI_GROUP


def test_group_policy_of_its_own() -> None:
    own = {"vcpu-ratio": 2.5, "disk-templates": ["plain"]}
    shown = dict(infodoc.policy(own, IPOLICY, cluster=False))
    assert shown["vcpu-ratio"] == "2.5" and shown["spindle-ratio"] == "default (32)"
    assert shown["allowed disk templates"] == "plain"


def local(text: str) -> list[int]:
    """(seconds, microseconds) of a local time as Ganeti's job info prints it."""
    stamp, usecs = text.split(".")
    return [int(time.mktime(time.strptime(stamp, "%Y-%m-%d %H:%M:%S"))), int(usecs)]


GANETI_JOB = """\
- Job ID: 2
  Status: success
  Received:         2026-12-04 04:21:53.411089
  Processing start: 2026-12-04 04:21:53.567299 (delta 0.156210s)
  Processing end:   2026-12-04 04:21:54.521041 (delta 0.953742s)
  Total processing time: 1.109952 seconds
  Opcodes: 
    - Opcode: OP_NODE_ADD
      Status: success
      Processing start: 2026-12-04 04:21:53.567299
      Execution start:  2026-12-04 04:21:53.571452
      Processing end:   2026-12-04 04:21:54.521029
      Input fields: 
        OP_ID: OP_NODE_ADD
        comment: None
        disk_state: 
        node_name: node2.gnt.test
        reason: 
          - - gnt:client:gnt-node
            - add
            - 1796358113408816384
      Result: None
      Execution log: 
        - Time: 2026-12-04 04:21:53.660776
          Content: [1, message,  - INFO: Node will be a master candidate]"""  # noqa: W291


def job_row(**changes: Any) -> dict[str, Any]:
    row = {"id": 2, "status": "success", "waiting_for": "-",
           "received_ts": local("2026-12-04 04:21:53.411089"),
           "start_ts": local("2026-12-04 04:21:53.567299"),
           "end_ts": local("2026-12-04 04:21:54.521041"),
           "ops": [{"OP_ID": "OP_NODE_ADD", "comment": None, "disk_state": {},
                    "node_name": "node2.gnt.test",
                    "reason": [["gnt:client:gnt-node", "add", 1796358113408816384]]}],
           "opresult": [None], "opstatus": ["success"],
           "opstart": [local("2026-12-04 04:21:53.567299")],
           "opexec": [local("2026-12-04 04:21:53.571452")],
           "opend": [local("2026-12-04 04:21:54.521029")],
           "oplog": [[[1, local("2026-12-04 04:21:53.660776"), "message",
                       " - INFO: Node will be a master candidate"]]]}
    row.update(changes)
    return row


def test_job_info_is_ganetis_text() -> None:
    assert infodoc.render([gnt_job.format_job_info(job_row())]) == GANETI_JOB


def test_job_info_of_cardumes_table_unfinished_failed_and_waiting() -> None:
    """Epoch floats, one flat log for the job (split among its opcodes by time), no
    execution start, an error as cardume stores it, and the lock a waiting job waits for."""
    start = time.mktime((2026, 12, 4, 4, 0, 0, 0, 0, -1))
    row = job_row(
        status="error", received_ts=start, start_ts=start + 1, end_ts=None,
        waiting_for="node/node1 held by job 4",
        ops=[{"OP_ID": "OP_TEST_DELAY"}, {"OP_ID": "OP_GROUP_REMOVE"}],
        opresult=[None, {"code": "wrong_state", "type": "WrongState",
                         "message": "group has nodes", "hint": "move them first"}],
        opstatus=["success", "error"], opstart=[start + 1, start + 3], opend=[start + 2, None],
        oplog=[[1, start + 1.5, "message", "first"], [2, start + 3.5, "message", "second"]])
    del row["opexec"]
    lines = infodoc.render([gnt_job.format_job_info(row)]).splitlines()
    assert lines[1:6] == ["  Status: error", "  Waiting for: node/node1 held by job 4",
                          "  Received:         2026-12-04 04:00:00.000000",
                          "  Processing start: 2026-12-04 04:00:01.000000 (delta 1.000000s)",
                          "  Processing end:   unknown (None)"]
    assert "  Total processing time: N/A" in lines
    assert "      Execution start:  N/A" in lines
    assert lines[-7:] == [
        "      Result: ",
        "        - WrongState",
        "        - - group has nodes (move them first)",
        "          - wrong_state",
        "      Execution log: ",
        "        - Time: 2026-12-04 04:00:03.500000",
        "          Content: [2, message, second]",
    ]
    first_op = lines[lines.index("    - Opcode: OP_TEST_DELAY"):
                     lines.index("    - Opcode: OP_GROUP_REMOVE")]
    assert "          Content: [1, message, first]" in first_op
    assert "          Content: [2, message, second]" not in first_op


def test_cluster_info_keys_values_and_what_cardume_lacks() -> None:
    data = {"name": "c1", "uuid": "u", "ctime": None, "mtime": None, "master": "node1",
            "architecture": ["64bits", "x86_64"], "tags": ["b10", "b9"],
            "default_hypervisor": "kvm", "enabled_hypervisors": ["kvm", "fake"],
            "hvparams_filled": {"kvm": {"acpi": True}, "fake": {"migration_mode": "live"},
                                "xen-pvm": {"x": 1}},
            "candidate_pool_size": 10, "max_running_jobs": 20, "max_tracked_jobs": 25,
            "mac_prefix": "aa:00:00", "master_netdev": "lo", "master_netmask": 32,
            "volume_group_name": "xenvg", "drbd_usermode_helper": "/bin/true",
            "file_storage_dir": "/f", "shared_file_storage_dir": "/s",
            "uid_pool": [[4000, 4009]], "os_search_path": ["/os"],
            "enabled_disk_templates": ["file", "plain"], "ndparams_filled": NDPARAMS,
            "beparams_filled": {"vcpus": 1}, "nicparams_filled": {"mode": "bridged"},
            "diskparams_filled": {"plain": {"stripes": 1}, "file": {}},
            "ipolicy_filled": {**IPOLICY, "vcpu-ratio": 4.0}}
    doc = gnt_cluster.format_cluster_info(data)
    lines = infodoc.render(doc).splitlines()
    assert [pair[0] for pair in doc] == [
        "Cluster name", "Cluster UUID", "Creation time", "Modification time", "Master node",
        "Architecture (this node)", "Tags", "Default hypervisor", "Enabled hypervisors",
        "Hypervisor parameters", "OS-specific hypervisor parameters", "OS parameters",
        "Hidden OSes", "Blacklisted OSes", "Cluster parameters", "Default node parameters",
        "Default instance parameters", "Default nic parameters", "Default disk parameters",
        "Instance policy - limits for instances", "Data collectors"]
    for line in ("Architecture (this node): 64bits (x86_64)", "Tags: b9, b10",
                 "Enabled hypervisors: kvm, fake", "  kvm: ", "    acpi: True",
                 "  uid pool: 4000-4009", "  lvm reserved volumes: (none)",
                 "  compression tools: ", "  ssh_key_type: None", "  default: ",
                 "    vcpus: 1", "  file: ", "    stripes: 1", "  vcpu-ratio: 4",
                 "  std: ", "    - min/0: ", "      max/0: ", "Data collectors: "):
        assert line in lines, line
    assert "xen-pvm" not in "\n".join(lines)  # only the enabled hypervisors


def test_instance_console_line_from_ganetis_console_information() -> None:
    from cardume.cli import instance_info

    def line(console: Any) -> str | None:
        return instance_info._console({"console": console}, "node1")

    vnc = {"instance": "vm1", "kind": "vnc", "host": "127.0.0.1", "port": 5901, "display": 1}
    assert line(vnc) == "vnc to 127.0.0.1:5901 (node node1) (display 1)"
    assert line({**vnc, "host": "0.0.0.0"}) == "vnc to node1:5901 (display 1)"
    assert line({"instance": "vm1", "kind": "msg", "message": "no console"}) is None
    assert line({"_rs": "unavail"}) is None
