"""The typed node-call seam: the call table (rpc/calls.py), the structures that travel
(rpc/wire.py), the node's handlers registered from the table, and the master's typed
client."""

from __future__ import annotations

import asyncio
import inspect
import re
import ssl
import typing
from pathlib import Path
from typing import Any

import pytest

from cardume import errors, objects, tls
from cardume.node.daemon import NodeDaemon, ensure_identity
from cardume.paths import NodePaths
from cardume.rpc import calls
from cardume.rpc.calls import CALLS, Call, NodeCalls
from cardume.rpc.client import NodeRpc
from cardume.rpc.http import BadArguments, PeerInfo
from cardume.rpc.server import RpcServer
from cardume.rpc.transport import RpcClient
from cardume.rpc.wire import DiskSpec, InstanceSpec, NicSpec

HOST = "127.0.0.1"
PEER = PeerInfo(address=HOST, cert_der=None, fingerprint=None, verified=True)

DRBD_DISK = {
    "uuid": "d0", "name": None, "dev_type": "drbd", "size": 256, "mode": "rw",
    "iv_name": "disk/0", "params": {"resync-rate": 61440},
    "logical_id": ["n1-uuid", "n2-uuid", 11000, 0, 1, "secret"],
    "children": [
        {"uuid": "c0", "name": None, "dev_type": "plain", "size": 256, "mode": "rw",
         "iv_name": "", "params": {}, "logical_id": ["xenvg", "d0_data"]},
        {"uuid": "c1", "name": None, "dev_type": "plain", "size": 128, "mode": "rw",
         "iv_name": "", "params": {}, "logical_id": ["xenvg", "d0_meta"]}],
    "dynamic_params": {"local_ip": "127.0.0.11", "remote_ip": "127.0.0.12",
                       "local_minor": 0, "remote_minor": 1},
}

INSTANCE = {
    "name": "vm1", "uuid": "vm1-uuid", "os": "debootstrap+default", "hypervisor": "kvm",
    "hvparams": {"kernel_path": "", "security_model": "pool"},
    "beparams": {"maxmem": 128, "minmem": 128, "vcpus": 1}, "osparams": {"dhcp": "yes"},
    "disk_template": "drbd", "disks": [DRBD_DISK],
    "nics": [{"uuid": "n0", "name": None, "mac": "aa:00:00:00:00:01", "ip": None,
              "network": None, "mode": "bridged", "link": "br0", "vlan": ""}],
    "debug_level": 0, "uid_pool": [[2000, 2010]],
}


@pytest.fixture
def daemon(tmp_path: Path) -> NodeDaemon:
    paths = NodePaths(str(tmp_path / "node1"))
    paths.make_private()
    ensure_identity(paths, "node1")
    return NodeDaemon(paths, "node1")


def run(coro: Any) -> Any:
    async def main() -> Any:
        return await coro
    return asyncio.run(main())


# --- the table and the handlers -------------------------------------------------------------

def test_every_declared_call_has_exactly_one_handler_and_every_handler_a_call(
        daemon: NodeDaemon) -> None:
    served: dict[str, list[str]] = {}
    for provider in (daemon, *daemon.local.providers):
        for name in calls.served_by(provider):
            served.setdefault(name, []).append(type(provider).__name__)
    assert sorted(served) == sorted(CALLS)
    assert {name: owners for name, owners in served.items() if len(owners) != 1} == {}
    assert daemon.server is not None
    assert sorted(daemon.server._handlers) == sorted(CALLS)


def test_each_handler_takes_the_declared_arguments_with_the_declared_types(
        daemon: NodeDaemon) -> None:
    for provider in (daemon, *daemon.local.providers):
        for name, method in calls.served_by(provider).items():
            stub = getattr(NodeCalls, name)
            declared = typing.get_type_hints(stub)
            declared.pop("node")
            got = typing.get_type_hints(method)
            assert list(inspect.signature(method).parameters)[1:] == list(
                CALLS[name].arg_names), name
            assert {k: got[k] for k in CALLS[name].arg_names} == {
                k: declared[k] for k in CALLS[name].arg_names}, name


def test_a_handler_with_other_argument_names_stops_the_daemon_from_starting() -> None:
    class Stray:
        @calls.serves
        async def test_delay(self, peer: PeerInfo, seconds: float) -> None:
            pass

    with pytest.raises(errors.InternalError, match="handler of test_delay takes"):
        calls.handlers(Stray(), complete=False)


def test_a_missing_handler_and_a_stray_one_are_refused() -> None:
    class Stray:
        @calls.serves
        async def instance_teleport(self, peer: PeerInfo) -> None:
            pass

    with pytest.raises(errors.InternalError, match="lacks handlers"):
        calls.handlers()
    with pytest.raises(errors.InternalError, match="not in the call table"):
        calls.handlers(Stray(), complete=False)


def test_the_table_keeps_its_semantics() -> None:
    """Timeout classes, caller rules and once-only rules as the daemons rely on them."""
    assert CALLS["version"].public and CALLS["join"].public
    assert {c.name for c in CALLS.values() if c.public} == {"version", "join"}
    assert CALLS["instance_os_add"].seconds == 4 * 3600
    assert CALLS["master_info"].caller == calls.NODE
    assert not CALLS["blockdev_write"].readonly and CALLS["blockdev_read"].readonly
    assert {c.caller for c in CALLS.values()} == {calls.PUBLIC, calls.MASTER,
                                                  calls.CANDIDATE, calls.NODE}


# --- arguments checked on the node ----------------------------------------------------------

@pytest.mark.parametrize(("call", "body", "message"), [
    ("instance_reboot", {"reboot_type": "hard"},
     "call 'instance_reboot': missing argument 'instance' (an instance spec)"),
    ("test_delay", {"duration": 1, "speed": 2},
     "call 'test_delay': unknown argument 'speed' (it takes duration)"),
    ("node_info", {"x": 1}, "call 'node_info': unknown argument 'x' (it takes no arguments)"),
    ("test_delay", {"duration": "1"},
     "call 'test_delay': argument 'duration' must be a number, not a string"),
    ("blockdev_grow", {"disk": DRBD_DISK, "amount": True},
     "call 'blockdev_grow': argument 'amount' must be an integer, not a boolean"),
    ("drbd_status", {"minors": [0, "1"]},
     "call 'drbd_status': argument 'minors'[1] must be an integer, not a string"),
    ("instance_start", {"instance": dict(INSTANCE, colour="blue")},
     "call 'instance_start': argument 'instance' has unknown key(s) colour"),
    ("instance_start", {"instance": dict(INSTANCE, disks=[dict(DRBD_DISK, size="big")])},
     "argument 'instance'.disks[0].size must be an integer, not a string"),
    ("blockdev_remove", {"disk": {"size": 1}},
     "call 'blockdev_remove': argument 'disk' lacks dev_type, logical_id"),
    ("instance_start", {"instance": dict(INSTANCE, name="")}, "has no name"),
])
def test_a_bad_argument_is_refused_before_the_handler_runs(
        daemon: NodeDaemon, call: str, body: dict[str, Any], message: str) -> None:
    assert daemon.server is not None
    with pytest.raises(BadArguments, match=re.escape(message)):
        run(daemon.server._handlers[call](body, PEER))


def test_a_bad_argument_is_an_http_400_whose_error_names_it(tmp_path: Path) -> None:
    """Over the real transport: the master gets a one-line wrong_input error, not a
    traceback, and the daemon keeps serving on the same connection."""
    ca_cert, ca_key = tls.create_ca("cluster.example")
    (tmp_path / "ca.pem").write_bytes(ca_cert)

    def issue(name: str) -> tuple[str, str]:
        key = tls.new_private_key()
        cert = tls.sign_node_cert(ca_cert, ca_key, tls.self_signed(name, key), name, [HOST])
        (tmp_path / f"{name}.pem").write_bytes(cert)
        (tmp_path / f"{name}.key").write_bytes(key)
        return str(tmp_path / f"{name}.pem"), str(tmp_path / f"{name}.key")

    ca = str(tmp_path / "ca.pem")
    server_ctx: ssl.SSLContext = tls.server_context(*issue("node1"), ca)
    delays: list[float] = []

    class Node:
        @calls.serves
        async def test_delay(self, peer: PeerInfo, duration: float) -> None:
            delays.append(duration)

    async def main() -> None:
        server = RpcServer(calls.handlers(Node(), complete=False), server_ctx)
        await server.start(HOST, 0)
        rpc = NodeRpc(RpcClient(tls.client_context(*issue("master"), ca)))
        node = objects.Node(name="node1", primary_ip=HOST, port=server.port)
        try:
            with pytest.raises(errors.WrongInput) as refused:
                await rpc.call(node, "test_delay", {"duration": "soon"})
            assert refused.value.message.startswith(f"node daemon at {HOST}:")
            assert refused.value.message.endswith(
                "call 'test_delay': argument 'duration' must be a number, not a string")
            await rpc.test_delay(node, 0.5)
            assert delays == [0.5]
        finally:
            await rpc.client.close()
            await server.close()
    run(main())


# --- the typed client --------------------------------------------------------------------------

class Recorder(NodeCalls):
    """Sends nothing: records each call by name and answers from ``replies``."""

    def __init__(self, replies: dict[str, Any] | None = None) -> None:
        self.sent: list[tuple[str, str, dict[str, Any], float | None]] = []
        self.replies = replies or {}

    async def call(self, node: objects.Node, call: str, args: dict[str, Any] | None = None,
                   timeout: float | None = None) -> Any:
        self.sent.append((node.name, call, dict(args or {}), timeout))
        return self.replies.get(call)


NODE1 = objects.Node(name="node1", primary_ip="127.0.0.11")
NODE2 = objects.Node(name="node2", primary_ip="127.0.0.12")


def test_typed_calls_send_the_bodies_the_node_always_got() -> None:
    rpc = Recorder({"drbd_status": {"version": None, "minors": {}}})
    spec = InstanceSpec.from_dict(INSTANCE)
    run(rpc.instance_reboot(NODE1, spec, "hard", 120))
    run(rpc.drbd_status(NODE1))
    run(rpc.timed(10.0).drbd_status(NODE1, [0, 2]))
    run(rpc.blockdev_remove(NODE1, DiskSpec.of(objects.Disk(
        uuid="d1", dev_type="plain", size=8, mode="rw", logical_id=["xenvg", "lv"]))))
    assert rpc.sent == [
        ("node1", "instance_reboot",
         {"instance": INSTANCE, "reboot_type": "hard", "shutdown_timeout": 120}, None),
        ("node1", "drbd_status", {}, None),
        ("node1", "drbd_status", {"minors": [0, 2]}, 10.0),
        ("node1", "blockdev_remove", {"disk": {
            "uuid": "d1", "name": None, "dev_type": "plain", "logical_id": ["xenvg", "lv"],
            "size": 8, "mode": "rw", "iv_name": "", "params": {}}}, None)]


def test_each_runs_a_typed_call_on_many_nodes_and_keeps_errors_per_node() -> None:
    class OneDown(Recorder):
        async def call(self, node: objects.Node, call: str,
                       args: dict[str, Any] | None = None, timeout: float | None = None) -> Any:
            if node.name == "node2":
                raise errors.RpcError("node node2: connection refused", node="node2")
            return {"memory_free": 10}

    rpc = OneDown()
    results = run(rpc.each([NODE1, NODE2], rpc.node_info))
    assert results["node1"].value == {"memory_free": 10}
    assert isinstance(results["node2"].error, errors.RpcError)


def test_a_malformed_reply_is_the_nodes_error() -> None:
    rpc = Recorder({"instance_list": {"vm1": True}})
    with pytest.raises(errors.RpcError, match="node node1 sent a malformed reply: the reply "
                                              "to 'instance_list' must be a list"):
        run(rpc.instance_list(NODE1))


def test_a_typed_call_refuses_a_wrong_structure_before_sending() -> None:
    rpc = Recorder()
    with pytest.raises(errors.WrongInput, match="unknown key"):
        run(rpc.blockdev_remove(NODE1, {"dev_type": "plain", "logical_id": [],  # type: ignore[arg-type]
                                        "colour": "red"}))
    assert rpc.sent == []


# --- the structures ------------------------------------------------------------------------------

def test_the_structures_round_trip_as_the_same_json() -> None:
    spec = InstanceSpec.from_dict(INSTANCE)
    assert spec.to_dict() == INSTANCE
    assert InstanceSpec.from_dict(spec.to_dict()) == spec
    assert isinstance(spec.disks[0], DiskSpec) and isinstance(spec.nics[0], NicSpec)
    assert spec.disks[0].children is not None
    assert spec.disks[0].children[1].logical_id == ["xenvg", "d0_meta"]
    minimal = DiskSpec.from_dict({"dev_type": "plain", "logical_id": ["xenvg", "lv"]})
    assert minimal.size == 0 and minimal.params == {} and minimal.uuid is None
    assert "children" not in minimal.to_dict() and "path" not in minimal.to_dict()


def test_a_configured_disk_becomes_the_spec_every_node_gets() -> None:
    disk = objects.Disk(dev_type="plain", size=512, iv_name="disk/0", mode="rw",
                        logical_id=["xenvg", "lv0"])
    spec = DiskSpec.of(disk)
    assert spec.to_dict() == {"uuid": disk.uuid, "name": None, "dev_type": "plain",
                              "size": 512, "mode": "rw", "iv_name": "disk/0", "params": {},
                              "logical_id": ["xenvg", "lv0"]}


def test_every_declared_argument_and_result_has_a_wire_kind() -> None:
    for call in CALLS.values():
        assert isinstance(call, Call)
        assert call.doc, call.name
        for arg in call.args:
            assert arg.kind.name, (call.name, arg.name)
