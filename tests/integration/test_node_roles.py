"""Who may make which node call: every call of the call table, made with the certificate of
the master, of a master candidate, of a plain node and of a foreign cluster, against real
node daemons. A node daemon decides from the caller's certificate and its own view of the
roles; a certificate the cluster CA did not sign never gets past the TLS handshake."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from integration_kit import VCluster, start_cluster, stop_cluster, wait_for

from cardume import errors, tls
from cardume.rpc import calls
from cardume.rpc.transport import RpcClient

# Calls whose handler must not run with empty arguments from an allowed caller: the node
# would really leave the cluster. Their refusal to others is still checked.
NOT_RUN_WHEN_ALLOWED = {"leave"}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VCluster]:
    vc = start_cluster(tmp_path_factory.mktemp("roles"))
    try:
        vc.gnt("gnt-node", "modify", "-C", "no", "--force", "node3")
        assert vc.roles() == {"node1": "M", "node2": "C", "node3": "R"}
        yield vc
    finally:
        stop_cluster(vc)


def client_for(cluster: VCluster, node: str) -> RpcClient:
    certs = cluster.node_dir(node) / "certs"
    return RpcClient(tls.client_context(str(certs / "node.pem"), str(certs / "node-key.pem"),
                                        str(certs / "ca.pem")))


def foreign_client(tmp: Path, cluster: VCluster) -> RpcClient:
    """A certificate named after the master, signed by another cluster's CA (what a stolen
    CA key of another cluster, or a self-made CA, gives an attacker)."""
    ca_cert, ca_key = tls.create_ca("other.example.com")
    key = tls.new_private_key()
    cert = tls.sign_node_cert(ca_cert, ca_key, tls.self_signed("node1", key), "node1",
                              [cluster.ip(1)])
    for name, data in (("cert.pem", cert), ("key.pem", key)):
        (tmp / name).write_bytes(data)
    theirs = cluster.node_dir("node1") / "certs" / "ca.pem"  # they do know our CA cert
    return RpcClient(tls.client_context(str(tmp / "cert.pem"), str(tmp / "key.pem"),
                                        str(theirs)))


def outcome(client: RpcClient, cluster: VCluster, target: str, name: str) -> str:
    """'refused' (by the node-role rule), 'answered' (the handler ran: it returned, or
    failed on the empty arguments), or 'no answer: ...' (the connection was refused)."""
    host, port = address(cluster, target)

    async def call() -> str:
        try:
            await client.call(host, port, name, {"duration": 0}, 20.0,
                              readonly=calls.CALLS[name].readonly)
        except errors.RpcError as err:
            if f"call '{name}' refused" in err.message:
                return "refused"
            if err.message.startswith("node daemon at"):  # the transport's own words
                return "no answer: " + err.message
            return "answered"
        except errors.CardumeError:
            return "answered"
        finally:
            await client.close()
        return "answered"
    return asyncio.run(call())


def address(cluster: VCluster, node: str) -> tuple[str, int]:
    identity = json.loads((cluster.node_dir(node) / "node.json").read_text())
    return str(identity["address"]), int(identity["port"])


def allowed(role: str, call: calls.Call) -> bool:
    if role == "master":
        return True
    if role == "candidate":
        return call.caller in (calls.CANDIDATE, calls.NODE)
    if role == "plain":
        return call.caller == calls.NODE
    return False


CALLERS = {"master": "node1", "candidate": "node2", "plain": "node3"}
TARGET = {"master": "node3", "candidate": "node3", "plain": "node2"}


@pytest.mark.parametrize("role", ["master", "candidate", "plain", "foreign"])
def test_every_call_from_every_role(cluster: VCluster, role: str, tmp_path: Path) -> None:
    target = TARGET.get(role, "node2")
    seen: dict[str, str] = {}
    for name, call in sorted(calls.CALLS.items()):
        if call.public:
            continue
        if allowed(role, call) and name in NOT_RUN_WHEN_ALLOWED:
            continue
        client = (foreign_client(tmp_path, cluster) if role == "foreign"
                  else client_for(cluster, CALLERS[role]))
        seen[name] = outcome(client, cluster, target, name)
    for name, got in seen.items():
        call = calls.CALLS[name]
        if role == "foreign":
            # refused by TLS: with TLS 1.3 the server checks the client's certificate
            # after the client believes the handshake done, so the client sees a
            # refusal alert or a connection closed without a reply, for every call
            assert got.startswith("no answer: "), (name, got)
        elif allowed(role, call):
            assert got == "answered", (role, name, got)
        else:
            assert got == "refused", (role, name, got)
    # what the issue found: a plain node stopped the master daemon, and read the CA key
    if role == "plain":
        assert seen["master_stop"] == "refused" and seen["config_dump"] == "refused"
        assert seen["queue_dump"] == "refused"
    assert cluster.pid("node1", "masterd") is not None
    assert cluster.master() == "node1"


def test_a_demoted_candidate_drops_its_replicas(cluster: VCluster) -> None:
    node3 = cluster.node_dir("node3")
    # node3 was demoted by the module's fixture: no configuration (CA key), no queue
    wait_for(lambda: not (node3 / "config.db").exists(), 10, "node3's config copy to go")
    assert not (node3 / "queue.db").exists()
    for node in ("node2",):
        assert (cluster.node_dir(node) / "config.db").exists()
        assert (cluster.node_dir(node) / "queue.db").exists()
