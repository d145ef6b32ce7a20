"""Job ids mean the same job forever, through the REST API too: a client submits a stream
of jobs, the master fails over in the middle of it, and afterwards the new master's REST
API lists every id the client was given and answers each one with that job.

Also the query filter over the REST API (PUT /2/query/RESOURCE with a qfilter)."""

from __future__ import annotations

import base64
import http.client
import json
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from integration_kit import VCluster, os_cluster, wait_for

from cardume import paths
from cardume.paths import NodePaths


class Rapi:
    """The REST API of whichever node is master, with the cluster's gnt-admin."""

    def __init__(self, cluster: VCluster) -> None:
        self.cluster = cluster
        login = (cluster.root / "rapi-credentials").read_text(encoding="ascii").strip()
        self.auth = "Basic " + base64.b64encode(login.encode()).decode()
        self.context = ssl.create_default_context()
        self.context.check_hostname = False
        self.context.verify_mode = ssl.CERT_NONE

    def where(self, node: str | None = None) -> tuple[str, int]:
        node_paths = NodePaths(str(self.cluster.node_dir(node or self.cluster.master())))
        found: Any = wait_for(lambda: paths.read_json(node_paths.rapi_address), 30,
                              "the REST daemon's address")
        return str(found["address"]), int(found["port"])

    def __call__(self, method: str, path: str, body: Any = None,
                 where: tuple[str, int] | None = None) -> tuple[int, Any]:
        host, port = where or self.where()
        conn = http.client.HTTPSConnection(host, port, context=self.context, timeout=30)
        try:
            headers = {"Authorization": self.auth}
            data = None
            if body is not None:
                data = json.dumps(body).encode()
                headers["Content-Type"] = "application/json"
            conn.request(method, path, body=data, headers=headers)
            reply = conn.getresponse()
            return reply.status, json.loads(reply.read() or b"null")
        finally:
            conn.close()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VCluster]:
    names = {"fvm1": "127.0.9.241", "fvm2": "127.0.9.242"}
    with os_cluster(tmp_path_factory.mktemp("rapi-jobs"), names) as vc:
        for name, node in (("fvm1", "node1"), ("fvm2", "node2")):
            vc.gnt("gnt-instance", "add", "-t", "diskless", "-o", "dummy+default", "-n",
                   node, name)
        yield vc


def test_job_ids_survive_a_master_failover_mid_stream(cluster: VCluster,
                                                     tmp_path: Path) -> None:
    rapi = Rapi(cluster)
    old = cluster.master()
    old_where = rapi.where()
    given: dict[int, str] = {}  # job id -> the tag it sets
    stop = threading.Event()

    def stream() -> None:
        """Tag jobs sent to the old master's REST API until it stops answering."""
        count = 0
        while not stop.is_set():
            tag = f"stream{count}"
            count += 1
            try:
                status, job_id = rapi("PUT", f"/2/tags?tag={tag}", where=old_where)
            except OSError:
                return  # the old master's REST daemon is gone: nothing was acknowledged
            if status != 200:
                return
            given[int(job_id)] = tag

    for i in range(5):
        status, job_id = rapi("PUT", f"/2/tags?tag=before{i}")
        assert status == 200 and isinstance(job_id, int)
        given[job_id] = f"before{i}"
    sender = threading.Thread(target=stream)
    sender.start()
    wait_for(lambda: len(given) >= 10, 30, "jobs submitted by the stream")
    new = next(name for name, role in cluster.roles().items() if role == "C")
    try:
        rc, out, err = cluster.gnt("gnt-cluster", "master-failover", node=new)
        assert out.splitlines()[-1] == f"Node {new} is now the master", out + err
    finally:
        stop.set()
        sender.join(60)
    assert cluster.master() == new and rapi.where() != old_where
    for i in range(3):
        status, job_id = rapi("PUT", f"/2/tags?tag=after{i}")
        assert status == 200
        given[int(job_id)] = f"after{i}"

    def finished() -> dict[int, str]:
        status, listing = rapi("GET", "/2/jobs?bulk=1")
        assert status == 200
        states = {int(job["id"]): job["status"] for job in listing}
        return states if all(states.get(i) in ("success", "error", "canceled")
                             for i in given) else {}

    states: Any = wait_for(finished, 60, "every job to end on the new master")
    # every id the client was given is listed, and reads back as the job it was
    assert set(given) <= set(states), sorted(set(given) - set(states))
    for job_id, tag in given.items():
        status, job = rapi("GET", f"/2/jobs/{job_id}")
        assert status == 200 and job["id"] == job_id
        assert job["ops"][0]["OP_ID"] == "OP_TAGS_SET"
        assert job["ops"][0]["tags"] == [tag], job_id
        assert job["status"] == "success", (job_id, job["opresult"])
    status, tags = rapi("GET", "/2/tags")
    assert status == 200 and set(given.values()) <= set(tags)
    assert len(given) > 8  # the stream really ran across the failover
    assert old != new


def test_query_with_a_filter(cluster: VCluster) -> None:
    rapi = Rapi(cluster)
    status, reply = rapi("PUT", "/2/query/instance",
                         {"fields": ["name", "pnode"],
                          "qfilter": ["|", ["=", "name", "fvm2"], ["=", "pnode", "nosuch"]]})
    assert status == 200
    assert reply["data"] == [[[0, "fvm2"], [0, "node2"]]]
    status, reply = rapi("GET", "/2/query/node?fields=name,pinst_cnt")
    assert status == 200
    assert sorted(tuple(cell[1] for cell in row) for row in reply["data"]) == [
        ("node1", 1), ("node2", 1), ("node3", 0)]
    status, reply = rapi("PUT", "/2/query/instance",
                         {"fields": ["name"], "qfilter": ["=", "nosuchfield", 1]})
    assert status == 400 and "nosuchfield" in reply["message"]
