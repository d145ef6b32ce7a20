"""Requests on the master's socket with values of the wrong type or size are refused in one
error naming the value; the queue and the daemon carry on unchanged."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest
from integration_kit import VCluster

from cardume import errors
from cardume.master.client import Client


@pytest.fixture
def client(cluster: VCluster) -> Iterator[Client]:
    with Client(str(cluster.node_dir("node1") / "run" / "master.sock")) as luxi:
        yield luxi


def test_the_drain_flag_takes_only_a_boolean(cluster: VCluster, client: Client) -> None:
    for value in ("false", "true", 0, 1, None, [False]):
        with pytest.raises(errors.WrongInput, match="drain flag must be true or false"):
            client.call("SetDrainFlag", value)
    assert cluster.gnt("gnt-cluster", "queue", "info")[1] == "The drain flag is unset\n"
    assert client.call("SetDrainFlag", False) is True


@pytest.mark.parametrize("job_id", [10**30, -1, 1.5, "x", True, None, [1]])
def test_job_ids_out_of_range_or_of_another_type(client: Client, job_id: object) -> None:
    for method in ("ArchiveJob", "CancelJob"):
        with pytest.raises(errors.WrongInput, match="invalid job id"):
            client.call(method, job_id)
    with pytest.raises(errors.WrongInput, match="invalid"):
        client.call("WaitForJobChange", job_id, None, 0, 1)


def test_malformed_requests(cluster: VCluster, client: Client) -> None:
    path = str(cluster.node_dir("node1") / "run" / "master.sock")
    for raw in (b"[" * 100_000 + b"]" * 100_000, b"{\"method\": ", b"[1, 2]", b"\xff\xfe"):
        with socket.socket(socket.AF_UNIX) as sock:
            sock.connect(path)
            sock.sendall(raw + b"\x03")
            reply = b""
            while not reply.endswith(b"\x03"):
                data = sock.recv(65536)
                assert data, raw[:20]
                reply += data
        assert b'"success":false' in reply and b"wrong_input" in reply, (raw[:20], reply)
    with pytest.raises(errors.WrongInput, match="must be a list"):
        client.call("SubmitJob", "x")
    with pytest.raises(errors.WrongInput, match="objects with an OP_ID"):
        client.call("SubmitJob", ["not an opcode"])
    results = client.call("SubmitManyJobs",
                          [[{"OP_ID": "OP_TEST_DELAY", "duration": "inf"}]])
    assert results[0][0] is False and "duration" in results[0][1]
    # the daemon still answers, and runs jobs
    assert "version" in client.call("Ping")
    assert cluster.gnt("gnt-debug", "delay", "0")[0] == 0
