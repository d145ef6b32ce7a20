"""A node daemon answers only clients with a certificate signed by the cluster CA."""

from __future__ import annotations

import asyncio
import http.client
import json
import ssl
from pathlib import Path
from typing import Any

import pytest
from integration_kit import PORT, VCluster

from cardume import errors, tls
from cardume.rpc.transport import RpcClient


def rpc_version(host: str, context: ssl.SSLContext) -> Any:
    async def call() -> Any:
        client = RpcClient(context)
        try:
            return await client.call(host, PORT, "version", {}, 10.0)
        finally:
            await client.close()
    return asyncio.run(call())


def http_version(host: str, context: ssl.SSLContext) -> tuple[int, Any]:
    """The same call with the standard library only: HTTPS POST /version."""
    conn = http.client.HTTPSConnection(host, PORT, context=context, timeout=10)
    try:
        conn.request("POST", "/version", body=b"{}",
                     headers={"Content-Type": "application/json"})
        reply = conn.getresponse()
        return reply.status, json.loads(reply.read())
    finally:
        conn.close()


@pytest.fixture(scope="module")
def certs(cluster: VCluster) -> Path:
    return cluster.node_dir("node1") / "certs"


def foreign_certs(tmp_path: Path, signed_by_other_ca: bool) -> tuple[str, str]:
    key = tls.new_private_key()
    if signed_by_other_ca:
        ca_cert, ca_key = tls.create_ca("other.example")
        cert = tls.sign_node_cert(ca_cert, ca_key, tls.self_signed("node1", key), "node1",
                                  ["127.0.0.1"])
    else:
        cert = tls.self_signed("node1", key)  # even claiming to be node1
    (tmp_path / "cert.pem").write_bytes(cert)
    (tmp_path / "key.pem").write_bytes(key)
    return str(tmp_path / "cert.pem"), str(tmp_path / "key.pem")


def test_cluster_certificate_is_answered(cluster: VCluster, certs: Path) -> None:
    context = tls.client_context(str(certs / "node.pem"), str(certs / "node-key.pem"),
                                 str(certs / "ca.pem"))
    for index, name in ((2, "node2"), (3, "node3")):
        reply = rpc_version(cluster.ip(index), context)
        assert reply["name"] == name and reply["joined"] is True
        assert reply["cluster_name"] == "cluster.vcluster"
        status, body = http_version(cluster.ip(index), context)
        assert status == 200 and body["ok"] is True and body["result"]["name"] == name


def test_client_without_certificate_is_refused(cluster: VCluster, certs: Path) -> None:
    context = tls.client_context(None, None, str(certs / "ca.pem"))
    with pytest.raises(errors.RpcError):
        rpc_version(cluster.ip(2), context)
    with pytest.raises((OSError, http.client.HTTPException)):
        http_version(cluster.ip(2), context)


@pytest.mark.parametrize("other_ca", [False, True], ids=["self-signed", "other-cluster-ca"])
def test_foreign_certificate_is_refused(cluster: VCluster, certs: Path, tmp_path: Path,
                                        other_ca: bool) -> None:
    cert, key = foreign_certs(tmp_path, other_ca)
    context = tls.client_context(cert, key, str(certs / "ca.pem"))
    with pytest.raises(errors.RpcError):
        rpc_version(cluster.ip(2), context)
    with pytest.raises((OSError, http.client.HTTPException)):
        http_version(cluster.ip(2), context)
    # and the daemon still serves the cluster afterwards
    good = tls.client_context(str(certs / "node.pem"), str(certs / "node-key.pem"),
                              str(certs / "ca.pem"))
    assert rpc_version(cluster.ip(2), good)["name"] == "node2"
