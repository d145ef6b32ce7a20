"""The REST API's resources, run without HTTP against a recording fake master socket (the
one seam): the opcodes a request submits, the replies' shapes (Ganeti's key sets), the
error statuses (400 bad body, 404 unknown object, 405, 501 for what cardume lacks)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from cardume import errors, opcodes
from cardume.rapi import cluster, groups, instances, jobs, nodes, routes
from cardume.rapi.base import Call, EncodedJson, RapiError

NODATA = {"_rs": "nodata"}

INSTANCES: list[dict[str, Any]] = [
    {"name": "vm1", "admin_state": "up", "os": "debootstrap+default", "pnode": "node1",
     "snodes": [], "disk_template": "diskless", "nic.ips": [None], "nic.macs": ["aa:00:00:01"],
     "nic.modes": ["bridged"], "nic.uuids": ["u-nic"], "nic.names": [None],
     "nic.links": ["br0"], "network_port": None, "disk.sizes": [], "disk_usage": 0,
     "disk.uuids": [], "disk.names": [], "beparams": {"maxmem": 128}, "hvparams": {},
     "oper_state": True, "oper_ram": 128, "oper_vcpus": 1, "status": "running",
     "custom_hvparams": {}, "custom_beparams": {}, "custom_nicparams": [{}],
     "ctime": 1.5, "mtime": 2.5, "uuid": "u-vm1", "serial_no": 2, "tags": ["web"]},
    {"name": "vm2", "admin_state": "down", "os": "debootstrap+default", "pnode": "node2",
     "snodes": ["node1"], "disk_template": "drbd", "nic.ips": [], "nic.macs": [],
     "nic.modes": [], "nic.uuids": [], "nic.names": [], "nic.links": [],
     "network_port": None, "disk.sizes": [1024], "disk_usage": 1152,
     "disk.uuids": ["u-d"], "disk.names": [None], "beparams": {}, "hvparams": {},
     "oper_state": NODATA, "oper_ram": NODATA, "oper_vcpus": NODATA,
     "status": "ERROR_nodedown", "custom_hvparams": {}, "custom_beparams": {},
     "custom_nicparams": [], "ctime": 1.0, "mtime": 1.0, "uuid": "u-vm2", "serial_no": 1,
     "tags": []},
]
NODES: list[dict[str, Any]] = [
    {"name": n, "offline": False, "master_candidate": True, "drained": False,
     "dtotal": 1000, "dfree": 500, "sptotal": NODATA, "spfree": NODATA, "mtotal": 4096,
     "mnode": 100, "mfree": 3000 if n == "node1" else NODATA, "pinst_cnt": 1, "sinst_cnt": 0,
     "ctotal": 2, "cnos": 2, "cnodes": 1, "csockets": 1, "pip": ip, "sip": ip,
     "role": role, "pinst_list": [p], "sinst_list": [], "master_capable": True,
     "vm_capable": True, "ndparams": {"spindle_count": 1}, "group.uuid": "u-g",
     "ctime": 1.0, "mtime": 1.0, "uuid": f"u-{n}", "serial_no": 1, "tags": []}
    for n, ip, role, p in (("node1", "127.0.0.11", "M", "vm1"),
                           ("node2", "127.0.0.12", "D", "vm2"))
]
GROUPS: list[dict[str, Any]] = [{"alloc_policy": "preferred", "name": "default", "node_cnt": 2,
           "node_list": ["node1", "node2"], "ipolicy": {}, "diskparams": {}, "ndparams": {},
           "custom_ndparams": {}, "ctime": 0, "mtime": 1.0, "uuid": "u-g", "serial_no": 1,
           "tags": []}]
JOBS: list[dict[str, Any]] = [
    {"id": 1, "ops": [{"OP_ID": "OP_INSTANCE_STARTUP", "instance_name": "vm1"}],
     "status": "success", "summary": ["INSTANCE_STARTUP(vm1)"], "opstatus": ["success"],
     "received_ts": 100.25, "start_ts": 101.5, "end_ts": 102.0,
     "oplog": [[1, 101.75, "message", "starting vm1"]], "opresult": [None],
     "opstart": [101.5], "opend": [102.0]},
    {"id": 2, "ops": [{"OP_ID": "OP_INSTANCE_REMOVE", "instance_name": "vm9"}],
     "status": "error", "summary": ["INSTANCE_REMOVE(vm9)"], "opstatus": ["error"],
     "received_ts": 200.0, "start_ts": 200.5, "end_ts": 201.0, "oplog": [],
     "opresult": [{"code": "unknown_entity", "type": "UnknownEntity",
                   "message": "instance 'vm9' is not known to the cluster", "hint": None}],
     "opstart": [200.5], "opend": [201.0]},
    {"id": 3, "ops": [{"OP_ID": "OP_TEST_DELAY", "duration": 5}], "status": "running",
     "summary": ["TEST_DELAY(5)"], "opstatus": ["running"], "received_ts": 300.0,
     "start_ts": 300.5, "end_ts": NODATA, "oplog": [[1, 300.6, "message", "sleeping"]],
     "opresult": [None], "opstart": [300.5], "opend": [None]},
]
# What this fake master's field tables have: Ganeti keys the real tables may lack are left
# out on purpose, so the replies must carry them as null without asking for them.
MISSING = {"instance": {"nic.networks", "nic.networks.names", "nic.bridges",
                        "disk.spindles"},
           "group": {"custom_ipolicy", "custom_diskparams"}}
TABLES: dict[str, tuple[list[dict[str, Any]], str]] = {
    "instance": (INSTANCES, "name"), "node": (NODES, "name"), "group": (GROUPS, "name"),
    "job": (JOBS, "id"),
}


class FakeMaster:
    """Answers the LUXI requests the resources make from the tables above, checks
    submitted opcodes with the opcode table as the real master does, and records every
    request."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[Any, ...]]] = []
        self.jobs: list[list[dict[str, Any]]] = []
        self.wait_reply: Any = "nochange"

    def submitted(self) -> list[dict[str, Any]]:
        """The opcodes of the last job, without their common parameters' defaults."""
        return self.jobs[-1]

    async def call(self, method: str, *args: Any) -> Any:
        self.calls.append((method, args))
        return getattr(self, method)(*args)

    async def call_raw(self, method: str, *args: Any) -> bytes:
        return json.dumps(await self.call(method, *args)).encode()

    def _fields(self, what: str) -> list[str]:
        objects_, _key = TABLES[what]
        names = {k for obj in objects_ for k in obj} - MISSING.get(what, set())
        return sorted(names)

    def QueryFields(self, what: str, names: list[str] | None) -> Any:
        fields = self._fields(what)
        for name in names or []:
            if name not in fields:
                raise errors.WrongInput(f"unknown field '{name}' for {what}")
        return {"fields": [{"name": n, "title": n.upper(), "kind": "other", "doc": n}
                           for n in (names or fields)]}

    def Query(self, what: str, fields: list[str], names: list[str], *rest: Any) -> Any:
        assert len(rest) <= 1
        objects_, key = TABLES[what]
        known = self._fields(what)
        for field in fields:
            if field not in known:
                raise errors.WrongInput(f"unknown field '{field}' for {what}")
        chosen = objects_
        if names:
            by_key = {str(o[key]): o for o in objects_}
            for name in names:
                if str(name) not in by_key:
                    raise errors.UnknownEntity(f"{what} '{name}' is not known")
            chosen = [by_key[str(n)] for n in names]
        return {"fields": self.QueryFields(what, fields)["fields"],
                "data": [[o[f] for f in fields] for o in chosen]}

    def QueryBulk(self, what: str, keys: list[str]) -> Any:
        """As the real master's: every object keyed by ``keys``, null where it has none."""
        objects_, _key = TABLES[what]
        known = self._fields(what)
        return [{k: (None if k not in known or isinstance(o.get(k), dict) and "_rs" in o[k]
                     else o.get(k)) for k in keys} for o in objects_]

    def SubmitJob(self, ops: list[dict[str, Any]]) -> int:
        for op in ops:
            opcodes.OpCode.from_dict(op)  # the master's check
        self.jobs.append(ops)
        return 100 + len(self.jobs)

    def CancelJob(self, job_id: int) -> list[Any]:
        return [True, f"Job {job_id} will be canceled"]

    def WaitForJobChange(self, *args: Any) -> Any:
        return self.wait_reply

    def QueryClusterInfo(self) -> Any:
        return {"name": "cluster.test", "master": "node1", "software_version": "0.1",
                "protocol_version": 2, "tags": ["b", "a"], "enabled_hypervisors": ["fake"],
                "hvparams": {"fake": {}}, "hvparams_filled": {"fake": {"migration_mode":
                                                                        "live"}},
                "beparams_filled": {"maxmem": 128}, "nicparams_filled": {"mode": "bridged"},
                "ndparams_filled": {"spindle_count": 1}, "diskparams_filled": {},
                "ipolicy_filled": {"vcpu-ratio": 4.0}, "volume_group_name": "xenvg",
                "uuid": "u-c", "tcpudp_port_pool": [1]}

    def QueryOs(self) -> Any:
        return [{"name": "debootstrap", "valid": True, "variants": ["default", "minimal"]},
                {"name": "plainos", "valid": True, "variants": []},
                {"name": "broken", "valid": False, "variants": ["x"]}]

    def InstanceConsole(self, name: str) -> Any:
        if name == "vm1":
            return {"kind": "message", "instance": "vm1",
                    "message": "Console not available for the fake hypervisor"}
        return {"kind": "command", "instance": name, "node": "node2", "vnc": None,
                "command": ["cardume", "console", "--node", "node2", "--instance", name]}


class Reply:
    def __init__(self, status: int, body: Any) -> None:
        self.status = status
        self.body = body


def request(master: FakeMaster, method: str, target: str, body: Any = None) -> Reply:
    """One request as the HTTP side runs it: the path table, the handler, and errors
    turned into their statuses (RapiError's own, the master's by http_status)."""
    from urllib.parse import parse_qs, urlsplit
    parts = urlsplit(target)

    async def run() -> Reply:
        try:
            route = routes.lookup(method, parts.path)
            call = Call(method, parts.path, parse_qs(parts.query, keep_blank_values=True),
                        body, route.params, master)
            result = await route.handler(call)
        except RapiError as err:
            return Reply(err.status, err.body())
        except errors.CardumeError as err:
            return Reply(err.http_status, RapiError(err.http_status, str(err)).body())
        if isinstance(result, EncodedJson):  # sent as it is by the HTTP side
            return Reply(200, json.loads(result))
        return Reply(200, json.loads(json.dumps(result)))
    return asyncio.run(run())


@pytest.fixture
def master() -> FakeMaster:
    return FakeMaster()


def only_op(master: FakeMaster) -> dict[str, Any]:
    ops = master.submitted()
    assert len(ops) == 1
    return ops[0]


# --- cluster -----------------------------------------------------------------------------

def test_root_version_features(master: FakeMaster) -> None:
    assert request(master, "GET", "/").body is None
    assert request(master, "GET", "/version").body == 2
    assert request(master, "GET", "/2").body is None
    assert sorted(request(master, "GET", "/2/features").body) == sorted(
        ["instance-create-reqv1", "instance-reinstall-reqv1", "node-migrate-reqv1",
         "node-evac-res1"])


def test_info_has_ganetis_keys_with_filled_parameters(master: FakeMaster) -> None:
    info = request(master, "GET", "/2/info").body
    assert list(info) == list(cluster.INFO_KEYS)
    assert info["name"] == "cluster.test" and info["master"] == "node1"
    assert info["beparams"] == {"default": {"maxmem": 128}}
    assert info["hvparams"] == {"fake": {"migration_mode": "live"}}
    assert info["vg_name"] == "xenvg" and info["tags"] == ["a", "b"]
    assert "tcpudp_port_pool" not in info


def test_os_lists_valid_definitions_with_their_variants(master: FakeMaster) -> None:
    assert request(master, "GET", "/2/os").body == [
        "debootstrap+default", "debootstrap+minimal", "plainos"]


def test_cluster_tags_and_modify(master: FakeMaster) -> None:
    assert request(master, "GET", "/2/tags").body == ["a", "b"]
    reply = request(master, "PUT", "/2/tags?tag=x&tag=y&dry-run=1")
    assert reply.status == 200 and reply.body == 101
    op = only_op(master)
    assert (op["OP_ID"], op["kind"], op["tags"], op["dry_run"]) == (
        "OP_TAGS_SET", "cluster", ["x", "y"], True)
    assert op["reason"][0][0] == "gnt:library:rlib2"
    request(master, "DELETE", "/2/tags?tag=x")
    assert only_op(master)["OP_ID"] == "OP_TAGS_DEL"
    assert request(master, "PUT", "/2/tags").status == 400
    assert request(master, "PUT", "/2/modify", {"candidate_pool_size": 5}).body == 103
    assert only_op(master)["candidate_pool_size"] == 5
    assert request(master, "PUT", "/2/redistribute-config").status == 200
    assert only_op(master)["OP_ID"] == "OP_CLUSTER_REDIST_CONF"


# --- instances ---------------------------------------------------------------------------

CREATE_BODY = {"__version__": 1, "mode": "create", "name": "vm3", "disk_template": "file",
               "disks": [{"size": 1024}], "nics": [{}], "os": "debootstrap+default",
               "pnode": "node1", "hypervisor": "fake", "beparams": {"maxmem": 256}}


def test_create_takes_ganetis_body_names(master: FakeMaster) -> None:
    reply = request(master, "POST", "/2/instances?dry-run=1", CREATE_BODY)
    assert reply.status == 200 and reply.body == 101
    op = only_op(master)
    assert op["OP_ID"] == "OP_INSTANCE_CREATE"
    assert (op["instance_name"], op["os_type"], op["pnode"], op["disks"], op["dry_run"]) == (
        "vm3", "debootstrap+default", "node1", [{"size": 1024}], True)
    assert op["beparams"] == {"maxmem": 256}


@pytest.mark.parametrize("change, words", [
    ({"__version__": None}, "version"),
    ({"__version__": 0}, "version"),
    ({"foo": 1}, "'foo'"),
    ({"disks": "big"}, "'disks'"),
    ({"disk_template": "nosuch"}, "'disk_template'"),
    ({"instance_name": "vm4"}, "'instance_name'"),
])
def test_create_refuses_a_bad_body_naming_the_parameter(
        master: FakeMaster, change: dict[str, Any], words: str) -> None:
    body = {k: v for k, v in {**CREATE_BODY, **change}.items() if v is not None}
    reply = request(master, "POST", "/2/instances", body)
    assert reply.status == 400
    assert words in reply.body["message"]
    assert not master.jobs


def test_a_body_that_is_no_object_is_400(master: FakeMaster) -> None:
    reply = request(master, "PUT", "/2/instances/vm1/modify", ["beparams"])
    assert reply.status == 400 and "JSON object" in reply.body["message"]


def test_instance_list_and_bulk_carry_ganetis_keys(master: FakeMaster) -> None:
    assert request(master, "GET", "/2/instances").body == [
        {"id": "vm1", "uri": "/2/instances/vm1"}, {"id": "vm2", "uri": "/2/instances/vm2"}]
    bulk = request(master, "GET", "/2/instances?bulk=1").body
    assert [list(row) for row in bulk] == [instances.I_FIELDS] * 2
    vm1, vm2 = bulk
    assert vm1["nic.bridges"] is None and vm1["disk.spindles"] is None
    assert vm2["oper_ram"] is None and vm2["status"] == "ERROR_nodedown"
    asked = [args for method, args in master.calls if method == "Query"][-1][1]
    assert not set(asked) & MISSING["instance"]


def test_one_instance_and_unknown_instance(master: FakeMaster) -> None:
    reply = request(master, "GET", "/2/instances/vm1")
    assert reply.status == 200 and list(reply.body) == instances.I_FIELDS
    assert reply.body["tags"] == ["web"]
    missing = request(master, "GET", "/2/instances/nosuch")
    assert missing.status == 404 and "nosuch" in missing.body["message"]
    assert request(master, "GET", "/2/instances/nosuch/tags").status == 404


ACTIONS = [
    ("DELETE", "/2/instances/vm1", None, "OP_INSTANCE_REMOVE", {}),
    ("POST", "/2/instances/vm1/reboot?type=soft&ignore_secondaries=1",
     {"shutdown_timeout": 30}, "OP_INSTANCE_REBOOT",
     {"reboot_type": "soft", "ignore_secondaries": True, "shutdown_timeout": 30}),
    ("POST", "/2/instances/vm1/reboot", None, "OP_INSTANCE_REBOOT", {"reboot_type": "hard"}),
    ("PUT", "/2/instances/vm1/shutdown?no_remember=1", {"timeout": 5},
     "OP_INSTANCE_SHUTDOWN", {"timeout": 5, "no_remember": True}),
    ("PUT", "/2/instances/vm1/startup?force=1", None, "OP_INSTANCE_STARTUP",
     {"force": True, "no_remember": False}),
    ("PUT", "/2/instances/vm1/activate-disks?ignore_size=1", None,
     "OP_INSTANCE_ACTIVATE_DISKS", {"ignore_size": True}),
    ("PUT", "/2/instances/vm1/deactivate-disks?force=1", None,
     "OP_INSTANCE_DEACTIVATE_DISKS", {"force": True}),
    ("POST", "/2/instances/vm1/disk/0/grow", {"amount": 512, "wait_for_sync": False},
     "OP_INSTANCE_GROW_DISK", {"disk": 0, "amount": 512, "wait_for_sync": False}),
    ("POST", "/2/instances/vm1/replace-disks?mode=replace_on_secondary&disks=0,1", None,
     "OP_INSTANCE_REPLACE_DISKS", {"mode": "replace_on_secondary", "disks": [0, 1]}),
    ("POST", "/2/instances/vm1/replace-disks", None, "OP_INSTANCE_REPLACE_DISKS",
     {"mode": "replace_auto", "disks": []}),
    ("PUT", "/2/instances/vm1/migrate", {"mode": "non-live", "cleanup": True},
     "OP_INSTANCE_MIGRATE", {"mode": "non-live", "cleanup": True}),
    ("PUT", "/2/instances/vm1/failover", {"ignore_consistency": True, "target_node": "node2"},
     "OP_INSTANCE_FAILOVER", {"ignore_consistency": True, "target_node": "node2"}),
    ("PUT", "/2/instances/vm1/rename", {"new_name": "vm1b", "name_check": False},
     "OP_INSTANCE_RENAME", {"new_name": "vm1b", "name_check": False}),
    ("PUT", "/2/instances/vm1/modify", {"beparams": {"maxmem": 256}},
     "OP_INSTANCE_SET_PARAMS", {"beparams": {"maxmem": 256}}),
    ("PUT", "/2/instances/vm1/tags?tag=a", None, "OP_TAGS_SET",
     {"kind": "instance", "name": "vm1", "tags": ["a"]}),
    ("DELETE", "/2/instances/vm1/tags?tag=a", None, "OP_TAGS_DEL",
     {"kind": "instance", "name": "vm1", "tags": ["a"]}),
]


@pytest.mark.parametrize("method, target, body, op_id, expected", ACTIONS,
                         ids=[f"{a[0]} {a[1]}" for a in ACTIONS])
def test_instance_action_submits_its_opcode(master: FakeMaster, method: str, target: str,
                                            body: Any, op_id: str,
                                            expected: dict[str, Any]) -> None:
    reply = request(master, method, target, body)
    assert reply.status == 200, reply.body
    assert reply.body == 101  # the job id, bare
    op = only_op(master)
    assert op["OP_ID"] == op_id
    assert op.get("instance_name", op.get("name")) == "vm1"
    assert {k: op[k] for k in expected} == expected


def test_modify_refuses_an_unknown_parameter_like_ganeti(master: FakeMaster) -> None:
    reply = request(master, "PUT", "/2/instances/vm1/modify", {"foo": 1})
    assert reply.status == 400
    assert reply.body["message"].startswith("Invalid body parameters:")
    assert "'foo'" in reply.body["message"]


def test_reinstall_v1_stops_reinstalls_and_starts(master: FakeMaster) -> None:
    request(master, "POST", "/2/instances/vm1/reinstall",
            {"os": "debootstrap+minimal", "start": True, "osparams": {"a": "b"}})
    ops = master.submitted()
    assert [o["OP_ID"] for o in ops] == ["OP_INSTANCE_SHUTDOWN", "OP_INSTANCE_REINSTALL",
                                         "OP_INSTANCE_STARTUP"]
    assert ops[1]["os_type"] == "debootstrap+minimal" and ops[1]["osparams"] == {"a": "b"}
    request(master, "POST", "/2/instances/vm1/reinstall?os=plainos&nostartup=1")
    ops = master.submitted()
    assert [o["OP_ID"] for o in ops] == ["OP_INSTANCE_SHUTDOWN", "OP_INSTANCE_REINSTALL"]
    assert ops[1]["os_type"] == "plainos"
    bad = request(master, "POST", "/2/instances/vm1/reinstall", {"start": "yes"})
    assert bad.status == 400 and "'start'" in bad.body["message"]


@pytest.mark.parametrize("target, status", [
    ("/2/instances/vm1/reboot?type=sideways", 400),
    ("/2/instances/vm1/reboot?ignore_secondaries=maybe", 400),
    ("/2/instances/vm1/disk/x/grow", 400),
])
def test_bad_query_arguments_are_400(master: FakeMaster, target: str, status: int) -> None:
    reply = request(master, "POST", target, {"amount": 1} if "grow" in target else None)
    assert reply.status == status
    assert not master.jobs


def test_console_in_ganetis_shape(master: FakeMaster) -> None:
    assert request(master, "GET", "/2/instances/vm1/console").body == {
        "instance": "vm1", "kind": "msg",
        "message": "Console not available for the fake hypervisor"}
    ssh = request(master, "GET", "/2/instances/vm2/console").body
    assert ssh["kind"] == "ssh" and ssh["host"] == "node2"
    assert ssh["command"][-2:] == ["--instance", "vm2"]


@pytest.mark.parametrize("target, static", [
    ("/2/instances/vm1/info", False), ("/2/instances/vm1/info?static=0", False),
    ("/2/instances/vm1/info?static=1", True),
])
def test_instance_info_is_a_query_data_job(master: FakeMaster, target: str,
                                           static: bool) -> None:
    """Ganeti's client reads the answer from the job's result: the reply is the job id; the
    opcode as Ganeti's job shows it (live data read under locks)."""
    reply = request(master, "GET", target)
    assert (reply.status, reply.body) == (200, 101)
    op = only_op(master)
    assert {k: op[k] for k in ("OP_ID", "instances", "static", "use_locking")} == {
        "OP_ID": "OP_INSTANCE_QUERY_DATA", "instances": ["vm1"], "static": static,
        "use_locking": not static}
    assert op["reason"][0][0] == "gnt:library:rlib2"


def test_instance_info_refuses_a_bad_static_flag(master: FakeMaster) -> None:
    reply = request(master, "GET", "/2/instances/vm1/info?static=yes")
    assert reply.status == 400 and "'static'" in reply.body["message"]
    assert not master.jobs


@pytest.mark.parametrize("method, target, words", [
    ("POST", "/2/instances/vm1/recreate-disks", "OP_INSTANCE_RECREATE_DISKS"),
    ("GET", "/2/networks", "networks"),
    ("GET", "/2/filters", "filters"),
    ("POST", "/2/nodes/node1/powercycle", "power-cycling"),
])
def test_what_cardume_lacks_is_501_naming_it(master: FakeMaster, method: str, target: str,
                                             words: str) -> None:
    reply = request(master, method, target)
    assert reply.status == 501
    assert words in reply.body["message"]
    assert not master.jobs


def test_export_is_a_job_whose_destination_is_the_target_node(master: FakeMaster) -> None:
    body = {"mode": "local", "destination": "node2", "shutdown": False}
    reply = request(master, "PUT", "/2/instances/vm1/export", body)
    assert (reply.status, reply.body) == (200, 101)
    op = only_op(master)
    assert {k: op[k] for k in ("OP_ID", "instance_name", "target_node", "shutdown",
                               "mode")} == {
        "OP_ID": "OP_BACKUP_EXPORT", "instance_name": "vm1", "target_node": "node2",
        "shutdown": False, "mode": "local"}


def test_prepare_export_takes_its_mode_from_the_query(master: FakeMaster) -> None:
    reply = request(master, "PUT", "/2/instances/vm1/prepare-export?mode=local")
    assert (reply.status, reply.body) == (200, 101)
    assert only_op(master)["mode"] == "local"
    reply = request(master, "PUT", "/2/instances/vm1/prepare-export")
    assert reply.status == 400 and "'mode'" in reply.body["message"]


def test_multi_alloc_is_one_job_of_creations_without_nodes(master: FakeMaster) -> None:
    body = {"iallocator": "hail", "instances": [
        {"__version__": 1, "name": "vm8", "disk_template": "plain", "disks": [{"size": 1024}],
         "nics": [], "os": "debootstrap+default", "mode": "create"},
        {"name": "vm9", "disk_template": "plain", "disks": [{"size": 512}], "nics": [],
         "os": "debootstrap+default", "mode": "create"}]}
    reply = request(master, "POST", "/2/instances-multi-alloc", body)
    assert (reply.status, reply.body) == (200, 101)
    op = only_op(master)
    assert op["OP_ID"] == "OP_INSTANCE_MULTI_ALLOC" and op["iallocator"] == "hail"
    assert [(i["instance_name"], i["os_type"]) for i in op["instances"]] == [
        ("vm8", "debootstrap+default"), ("vm9", "debootstrap+default")]
    assert all("__version__" not in i for i in op["instances"])


def test_multi_alloc_without_instances_is_400(master: FakeMaster) -> None:
    reply = request(master, "POST", "/2/instances-multi-alloc", {"iallocator": "hail"})
    assert reply.status == 400 and "'instances'" in reply.body["message"]
    assert not master.jobs


def test_storage_without_output_fields_is_400(master: FakeMaster) -> None:
    reply = request(master, "GET", "/2/nodes/node1/storage")
    assert reply.status == 400 and "output_fields" in reply.body["message"]


@pytest.mark.parametrize("target, storage_type", [
    ("/2/nodes/node1/storage?storage_type=file&output_fields=name,size,free", "file"),
    ("/2/nodes/node1/storage?output_fields=name,size,free", None),
])
def test_storage_is_a_query_storage_job(master: FakeMaster, target: str,
                                        storage_type: str | None) -> None:
    """The reply is the job id; the job's result holds the rows (as Ganeti's)."""
    reply = request(master, "GET", target)
    assert (reply.status, reply.body) == (200, 101)
    op = only_op(master)
    assert {k: op[k] for k in ("OP_ID", "nodes", "storage_type", "output_fields")} == {
        "OP_ID": "OP_NODE_QUERY_STORAGE", "nodes": ["node1"], "storage_type": storage_type,
        "output_fields": ["name", "size", "free"]}


def test_storage_of_an_unknown_type_is_400_naming_it(master: FakeMaster) -> None:
    reply = request(master, "GET", "/2/nodes/node1/storage?storage_type=nope&output_fields=n")
    assert reply.status == 400
    assert "storage_type" in reply.body["message"] and "'nope'" in reply.body["message"]
    assert not master.jobs


# --- nodes -------------------------------------------------------------------------------

def test_nodes_list_bulk_and_one(master: FakeMaster) -> None:
    assert request(master, "GET", "/2/nodes").body == [
        {"id": "node1", "uri": "/2/nodes/node1"}, {"id": "node2", "uri": "/2/nodes/node2"}]
    bulk = request(master, "GET", "/2/nodes?bulk=1").body
    assert [list(row) for row in bulk] == [nodes.N_FIELDS] * 2
    assert bulk[1]["mfree"] is None and bulk[0]["mfree"] == 3000
    one = request(master, "GET", "/2/nodes/node2").body
    assert list(one) == [*nodes.N_FIELDS, "secondary_ip"]
    assert one["secondary_ip"] == "127.0.0.12"
    assert request(master, "GET", "/2/nodes/node9").status == 404


def test_node_role_get_and_put(master: FakeMaster) -> None:
    assert request(master, "GET", "/2/nodes/node1/role").body == "master"
    assert request(master, "GET", "/2/nodes/node2/role").body == "drained"
    request(master, "PUT", "/2/nodes/node2/role?force=1&auto-promote=1", "regular")
    op = only_op(master)
    assert (op["OP_ID"], op["node_name"], op["master_candidate"], op["offline"],
            op["drained"], op["force"], op["auto_promote"]) == (
        "OP_NODE_SET_PARAMS", "node2", False, False, False, True, True)
    request(master, "PUT", "/2/nodes/node2/role", "offline")
    op = only_op(master)
    assert (op["offline"], op["master_candidate"], op["drained"]) == (True, None, None)
    for bad in ("master", "boss", {"role": "regular"}):
        reply = request(master, "PUT", "/2/nodes/node2/role", bad)
        assert reply.status == 400 and "role" in reply.body["message"]
    assert len(master.jobs) == 2


def test_node_evacuate_modify_and_tags(master: FakeMaster) -> None:
    request(master, "POST", "/2/nodes/node1/evacuate?dry-run=1",
            {"mode": "secondary-only", "remote_node": "node2", "early_release": True})
    op = only_op(master)
    assert (op["OP_ID"], op["node_name"], op["mode"], op["remote_node"], op["dry_run"]) == (
        "OP_NODE_EVACUATE", "node1", "secondary-only", "node2", True)
    request(master, "POST", "/2/nodes/node1/modify", {"drained": True})
    assert only_op(master)["drained"] is True
    assert request(master, "POST", "/2/nodes/node1/modify", {"drained": "yes"}).status == 400
    request(master, "PUT", "/2/nodes/node1/tags?tag=rack1")
    assert only_op(master)["kind"] == "node"


def test_node_migrate_migrates_each_primary_instance(master: FakeMaster) -> None:
    reply = request(master, "POST", "/2/nodes/node2/migrate", {"mode": "live"})
    assert reply.status == 200
    op = only_op(master)
    assert (op["OP_ID"], op["instance_name"], op["mode"]) == (
        "OP_INSTANCE_MIGRATE", "vm2", "live")
    bad = request(master, "POST", "/2/nodes/node2/migrate", {"cleanup": True})
    assert bad.status == 400 and "'cleanup'" in bad.body["message"]
    assert request(master, "POST", "/2/nodes/node9/migrate", {}).status == 404


# --- groups ------------------------------------------------------------------------------

def test_groups(master: FakeMaster) -> None:
    assert request(master, "GET", "/2/groups").body == [
        {"id": "default", "uri": "/2/groups/default"}]
    bulk = request(master, "GET", "/2/groups?bulk=1").body
    assert list(bulk[0]) == groups.G_FIELDS and bulk[0]["custom_ipolicy"] is None
    assert list(request(master, "GET", "/2/groups/default").body) == groups.G_FIELDS
    assert request(master, "GET", "/2/groups/nosuch").status == 404
    request(master, "POST", "/2/groups", {"name": "rack2", "alloc_policy": "last_resort"})
    op = only_op(master)
    assert (op["OP_ID"], op["group_name"], op["alloc_policy"]) == (
        "OP_GROUP_ADD", "rack2", "last_resort")
    request(master, "PUT", "/2/groups/rack2/rename", {"new_name": "rack3"})
    assert only_op(master)["new_name"] == "rack3"
    request(master, "PUT", "/2/groups/rack3/assign-nodes?force=1", {"nodes": ["node2"]})
    op = only_op(master)
    assert (op["OP_ID"], op["nodes"], op["force"]) == (
        "OP_GROUP_ASSIGN_NODES", ["node2"], True)
    request(master, "PUT", "/2/groups/rack3/modify", {"alloc_policy": "preferred"})
    assert only_op(master)["OP_ID"] == "OP_GROUP_SET_PARAMS"
    request(master, "PUT", "/2/groups/rack3/tags?tag=t")
    assert only_op(master)["kind"] == "nodegroup"
    request(master, "DELETE", "/2/groups/rack3")
    assert only_op(master)["OP_ID"] == "OP_GROUP_REMOVE"


# --- jobs --------------------------------------------------------------------------------

def test_jobs_list_and_bulk_in_ganetis_shape(master: FakeMaster) -> None:
    assert request(master, "GET", "/2/jobs").body == [
        {"id": i, "uri": f"/2/jobs/{i}"} for i in (1, 2, 3)]
    bulk = request(master, "GET", "/2/jobs?bulk=1").body
    assert [list(job) for job in bulk] == [jobs.J_FIELDS_BULK] * 3
    assert bulk[0]["received_ts"] == [100, 250000]
    assert bulk[2]["end_ts"] is None


def test_one_job_with_log_per_opcode_and_ganeti_errors(master: FakeMaster) -> None:
    job = request(master, "GET", "/2/jobs/1").body
    assert list(job) == jobs.J_FIELDS
    assert job["oplog"] == [[[1, [101, 750000], "message", "starting vm1"]]]
    failed = request(master, "GET", "/2/jobs/2").body
    assert failed["opresult"] == [["OpPrereqError", [
        "instance 'vm9' is not known to the cluster", "unknown_entity"]]]
    assert request(master, "GET", "/2/jobs/99").status == 404
    assert request(master, "GET", "/2/jobs/abc").status == 400


def test_cancel_job(master: FakeMaster) -> None:
    assert request(master, "DELETE", "/2/jobs/3").body == [True, "Job 3 will be canceled"]
    assert ("CancelJob", (3,)) in master.calls


def test_wait_answers_at_once_when_the_client_knows_nothing(master: FakeMaster) -> None:
    reply = request(master, "GET", "/2/jobs/3/wait",
                    {"fields": ["status"], "previous_job_info": None,
                     "previous_log_serial": None})
    assert reply.body == {"job_info": ["running"],
                          "log_entries": [[1, [300, 600000], "message", "sleeping"]]}
    assert not any(m == "WaitForJobChange" for m, _ in master.calls)


def test_wait_long_polls_the_master_and_answers_null_on_timeout(master: FakeMaster) -> None:
    body = {"fields": ["status"], "previous_job_info": ["running"], "previous_log_serial": 1}
    assert request(master, "GET", "/2/jobs/3/wait", body).body is None
    waits = [args for m, args in master.calls if m == "WaitForJobChange"]
    assert waits == [(3, "running", 1, jobs.WAIT_TIMEOUT)]
    master.wait_reply = {"status": "running", "log": []}
    assert request(master, "GET", "/2/jobs/3/wait", body).body == {
        "job_info": ["running"], "log_entries": []}


def test_wait_of_an_ended_job_answers_at_once(master: FakeMaster) -> None:
    reply = request(master, "GET", "/2/jobs/1/wait",
                    {"fields": ["status"], "previous_job_info": ["success"],
                     "previous_log_serial": 1})
    assert reply.body == {"job_info": ["success"], "log_entries": []}


@pytest.mark.parametrize("body", [None, [], {"fields": "status"},
                                  {"fields": [], "previous_job_info": "x"},
                                  {"fields": [], "previous_log_serial": "1"}])
def test_wait_refuses_a_bad_body(master: FakeMaster, body: Any) -> None:
    assert request(master, "GET", "/2/jobs/3/wait", body).status == 400


# --- queries -----------------------------------------------------------------------------

def test_query_cells_carry_ganetis_statuses(master: FakeMaster) -> None:
    reply = request(master, "GET", "/2/query/node?fields=name,mfree,nosuch").body
    assert [f["name"] for f in reply["fields"]] == ["name", "mfree", "nosuch"]
    assert reply["fields"][2]["kind"] == "unknown"
    assert reply["data"] == [[[0, "node1"], [0, 3000], [1, None]],
                             [[0, "node2"], [2, None], [1, None]]]


def test_query_put_and_fields(master: FakeMaster) -> None:
    reply = request(master, "PUT", "/2/query/instance", {"fields": ["name", "status"]})
    assert reply.body["data"] == [[[0, "vm1"], [0, "running"]],
                                  [[0, "vm2"], [0, "ERROR_nodedown"]]]
    fields = request(master, "GET", "/2/query/job/fields?fields=id,bogus").body["fields"]
    assert [f["name"] for f in fields] == ["id", "bogus"]
    assert fields[1]["kind"] == "unknown"
    every = request(master, "GET", "/2/query/group/fields").body["fields"]
    assert {f["name"] for f in every} >= {"name", "node_list"}


@pytest.mark.parametrize("method, target, body, status", [
    ("GET", "/2/query/network?fields=name", None, 501),
    ("GET", "/2/query/bogus?fields=name", None, 404),
    ("GET", "/2/query/node", None, 400),
    ("PUT", "/2/query/node", {"fields": ["name"], "sort": 1}, 400),
    ("PUT", "/2/query/node", {"qfilter": None}, 400),
])
def test_query_errors(master: FakeMaster, method: str, target: str, body: Any,
                      status: int) -> None:
    assert request(master, method, target, body).status == status


def test_query_filter_goes_to_the_master(master: FakeMaster) -> None:
    qfilter = ["=", "name", "vm1"]
    reply = request(master, "PUT", "/2/query/instance", {"fields": ["name"],
                                                         "qfilter": qfilter})
    assert reply.status == 200
    assert master.calls[-1] == ("Query", ("instance", ["name"], [], qfilter))


# --- the path table ----------------------------------------------------------------------

def test_unknown_path_and_method(master: FakeMaster) -> None:
    assert request(master, "GET", "/2/nosuch").status == 404
    reply = request(master, "DELETE", "/2/info")
    assert reply.status == 405 and "GET" in reply.body["message"]


def test_access_reads_read_writes_write() -> None:
    blocking = {"/2/jobs/1/wait", "/2/nodes/n/storage"}
    paths = ["/2", "/2/info", "/2/features", "/2/os", "/2/tags", "/2/instances",
             "/2/instances/i", "/2/instances/i/info", "/2/instances/i/tags",
             "/2/instances/i/console", "/2/nodes", "/2/nodes/n", "/2/nodes/n/role",
             "/2/nodes/n/tags", "/2/groups", "/2/groups/g", "/2/groups/g/tags", "/2/jobs",
             "/2/jobs/1", "/2/query/node", "/2/query/node/fields", *blocking]
    for path in paths:
        expected = "write" if path in blocking else "read"
        assert routes.lookup("GET", path).access == expected, path
    assert routes.lookup("PUT", "/2/query/node").access == "read"
    for method, path in [("POST", "/2/instances"), ("DELETE", "/2/instances/i"),
                         ("PUT", "/2/instances/i/modify"), ("POST", "/2/nodes/n/evacuate"),
                         ("PUT", "/2/nodes/n/role"), ("DELETE", "/2/jobs/1"),
                         ("PUT", "/2/groups/g/assign-nodes"), ("PUT", "/2/modify")]:
        assert routes.lookup(method, path).access == "write", (method, path)
