"""Ganeti's own RAPI client (Debian's python3-ganeti-rapi) drives a cardume cluster through
its REST daemon: creating, listing, modifying, rebooting, migrating, failing over, renaming
and removing instances, waiting on jobs; what ``gnt-instance list`` shows afterwards is
what the client asked for.

The client is Ganeti's library as installed for the system's Python, so it runs in a
subprocess of /usr/bin/python3 (the project's virtual environment does not see it): one
client method per run, its arguments and result as JSON.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from integration_kit import Gnt, VCluster, os_cluster, wait_for

from cardume import paths
from cardume.paths import NodePaths
from cardume.rapi import groups, instances, jobs, nodes

SYSTEM_PYTHON = "/usr/bin/python3"
CLIENT = "/usr/lib/python3/dist-packages/ganeti/rapi/client.py"
OS = "dummy+default"

# Runs one method of Ganeti's client: argv is the address, the credentials file, the CA
# file, the method and its JSON [args, kwargs]; prints {"result": ...} or {"error": ...}.
DRIVER = """
import json, sys
from ganeti.rapi import client as rapi
host, port, credentials, cafile, method, call = sys.argv[1:7]
user, _, password = open(credentials).read().strip().partition(":")
conn = rapi.GanetiRapiClient(host, int(port), user, password,
                             curl_config_fn=rapi.GenericCurlConfig(cafile=cafile))
args, kwargs = json.loads(call)
try:
    result = getattr(conn, method)(*args, **kwargs)
except rapi.GanetiApiError as err:
    print(json.dumps({"error": str(err), "code": err.code}))
else:
    print(json.dumps({"result": result}))
"""

pytestmark = pytest.mark.skipif(not os.path.exists(CLIENT),
                                reason="python3-ganeti-rapi is not installed")


class ClientError(Exception):
    def __init__(self, message: str, code: int | None) -> None:
        super().__init__(message)
        self.code = code


class RapiClient:
    """Ganeti's GanetiRapiClient, one method call per /usr/bin/python3 run."""

    def __init__(self, cluster: VCluster, workdir: Path) -> None:
        master = NodePaths(str(cluster.node_dir(cluster.master())))
        where: Any = wait_for(lambda: paths.read_json(master.rapi_address), 30,
                         "the REST daemon's address")
        self.host, self.port = str(where["address"]), str(where["port"])
        self.credentials = str(cluster.root / "rapi-credentials")
        wait_for(lambda: os.path.exists(self.credentials), 30, "the REST API's credentials")
        pem = Path(master.rapi_cert).read_text(encoding="ascii")
        begin = pem.index("-----BEGIN CERTIFICATE-----")
        end = pem.index("-----END CERTIFICATE-----") + len("-----END CERTIFICATE-----")
        self.cafile = workdir / "rapi-ca.pem"  # the certificate alone, not its key
        self.cafile.write_text(pem[begin:end] + "\n", encoding="ascii")
        self.driver = workdir / "rapi_driver.py"
        self.driver.write_text(DRIVER, encoding="ascii")

    def __call__(self, method: str, *args: Any, **kwargs: Any) -> Any:
        proc = subprocess.run(
            [SYSTEM_PYTHON, str(self.driver), self.host, self.port, self.credentials,
             str(self.cafile), method, json.dumps([list(args), kwargs])],
            capture_output=True, text=True, timeout=180, check=False)
        assert proc.returncode == 0, f"{method}: {proc.stderr}"
        reply = json.loads(proc.stdout)
        if "error" in reply:
            raise ClientError(reply["error"], reply["code"])
        return reply["result"]

    def run_job(self, method: str, *args: Any, **kwargs: Any) -> int:
        """A mutation: its job id, once the client saw the job succeed."""
        job_id = self(method, *args, **kwargs)
        assert isinstance(job_id, int), job_id
        ok = self("WaitForJobCompletion", job_id, period=1, retries=120)
        assert ok, self("GetJobStatus", job_id)["opresult"]
        return job_id


NAMES = {f"rvm{i}": f"127.0.9.{200 + i}" for i in range(1, 20)}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VCluster]:
    with os_cluster(tmp_path_factory.mktemp("rapi"), NAMES) as vc:
        yield vc


@pytest.fixture(scope="module")
def client(cluster: VCluster, tmp_path_factory: pytest.TempPathFactory) -> RapiClient:
    return RapiClient(cluster, tmp_path_factory.mktemp("rapi-client"))


def listing(gnt: Gnt, fields: str) -> dict[str, list[str]]:
    out = gnt("gnt-instance", "list", "--no-headers", "--separator", "|", "-o",
              f"name,{fields}")[1]
    return {line.split("|")[0]: line.split("|")[1:] for line in out.splitlines()}


def create(client: RapiClient, name: str, template: str = "diskless",
           node: str = "node1", **extra: Any) -> int:
    disks = [{"size": 16}] if template != "diskless" else []
    return client.run_job("CreateInstance", "create", name, template, disks, [{}],
                          os=OS, pnode=node, **extra)


def test_cluster_info_and_features(cluster: VCluster, client: RapiClient) -> None:
    info = client("GetInfo")
    assert info["master"] == cluster.master()
    assert {"instance-create-reqv1", "instance-reinstall-reqv1", "node-migrate-reqv1",
            "node-evac-res1"} <= set(client("GetFeatures"))
    assert client("GetVersion") == 2
    assert OS in client("GetOperatingSystems")
    assert client("GetNodes") == ["node1", "node2", "node3"]
    assert [list(n) for n in client("GetNodes", bulk=True)] == [nodes.N_FIELDS] * 3
    assert [list(g) for g in client("GetGroups", bulk=True)] == [groups.G_FIELDS]
    assert all(list(j) == jobs.J_FIELDS_BULK for j in client("GetJobs", bulk=True))
    assert client("GetNodeRole", cluster.master()) == "master"


def test_create_list_and_remove(gnt: Gnt, client: RapiClient) -> None:
    create(client, "rvm1")
    assert listing(gnt, "pnode,status")["rvm1"] == ["node1", "running"]
    assert "rvm1" in client("GetInstances")
    bulk = {i["name"]: i for i in client("GetInstances", bulk=True)}
    assert bulk["rvm1"]["status"] == "running" and bulk["rvm1"]["pnode"] == "node1"
    one = client("GetInstance", "rvm1")
    assert one["os"] == OS and one["disk_template"] == "diskless"
    assert list(one) == instances.I_FIELDS == list(bulk["rvm1"])
    client.run_job("DeleteInstance", "rvm1")
    assert "rvm1" not in listing(gnt, "status")
    with pytest.raises(ClientError) as missing:
        client("GetInstance", "rvm1")
    assert missing.value.code == 404


def test_modify_reboot_shutdown_startup(gnt: Gnt, client: RapiClient) -> None:
    create(client, "rvm2")
    client.run_job("ModifyInstance", "rvm2", beparams={"maxmem": 256, "minmem": 256})
    assert listing(gnt, "be/maxmem,be/minmem")["rvm2"] == ["256", "256"]
    client.run_job("RebootInstance", "rvm2", reboot_type="soft")
    assert listing(gnt, "status")["rvm2"] == ["running"]
    client.run_job("ShutdownInstance", "rvm2", timeout=10)
    assert listing(gnt, "status")["rvm2"] == ["ADMIN_down"]
    client.run_job("StartupInstance", "rvm2")
    assert listing(gnt, "status")["rvm2"] == ["running"]
    # instance-reinstall-reqv1: stop, reinstall, start again
    job_id = client.run_job("ReinstallInstance", "rvm2", os=OS)
    assert client("GetJobStatus", job_id)["summary"] == [
        "INSTANCE_SHUTDOWN(rvm2)", "INSTANCE_REINSTALL(rvm2)", "INSTANCE_STARTUP(rvm2)"]
    assert listing(gnt, "status")["rvm2"] == ["running"]
    with pytest.raises(ClientError) as bad:
        client("ModifyInstance", "rvm2", foo=1)
    assert bad.value.code == 400 and "foo" in str(bad.value)
    client.run_job("DeleteInstance", "rvm2")


def test_migrate_failover_and_rename(gnt: Gnt, client: RapiClient) -> None:
    create(client, "rvm3", template="sharedfile")
    client.run_job("MigrateInstance", "rvm3", target_node="node2")
    assert listing(gnt, "pnode,status")["rvm3"] == ["node2", "running"]
    client.run_job("FailoverInstance", "rvm3", target_node="node3")
    assert listing(gnt, "pnode,status")["rvm3"] == ["node3", "running"]
    # as in Ganeti, a running instance is refused a rename, with Ganeti's error shape
    job_id = client("RenameInstance", "rvm3", "rvm4")
    assert not client("WaitForJobCompletion", job_id, period=1, retries=60)
    [result] = client("GetJobStatus", job_id)["opresult"]
    assert result[0] == "OpPrereqError" and result[1][1] == "wrong_state"
    client.run_job("ShutdownInstance", "rvm3")
    client.run_job("RenameInstance", "rvm3", "rvm4")
    shown = listing(gnt, "pnode,status")
    assert "rvm3" not in shown and shown["rvm4"] == ["node3", "ADMIN_down"]
    client.run_job("DeleteInstance", "rvm4")
    assert "rvm4" not in listing(gnt, "pnode")


def test_jobs_are_listed_and_waited_on(gnt: Gnt, client: RapiClient) -> None:
    job_id = create(client, "rvm5")
    assert job_id in client("GetJobs")
    status = client("GetJobStatus", job_id)
    assert status["status"] == "success" and status["opstatus"] == ["success"]
    assert status["summary"] == ["INSTANCE_CREATE(rvm5)"]
    change = client("WaitForJobChange", job_id, ["status"], None, 0)
    assert change["job_info"] == ["success"]
    out = gnt("gnt-job", "list", "--no-headers", "-o", "id")[1].split()
    assert sorted(client("GetJobs")) == sorted(int(i) for i in out)
    client.run_job("DeleteInstance", "rvm5")


def test_instance_info_and_node_storage_are_jobs_read_back(gnt: Gnt,
                                                           client: RapiClient) -> None:
    """GetInstanceInfo and GetNodeStorageUnits answer job ids, as Ganeti's; the client
    reads each answer from the job's result."""
    create(client, "rvm6", template="sharedfile")
    job_id = client.run_job("GetInstanceInfo", "rvm6")
    [data] = client("GetJobStatus", job_id)["opresult"]
    info = data["rvm6"]
    assert (info["config_state"], info["run_state"], info["pnode"], info["disk_template"],
            info["os"]) == ("up", "up", "node1", "sharedfile", OS)
    [disk] = info["disks"]
    path = disk["logical_id"][1]
    assert disk["dev_type"] == "sharedfile" and disk["size"] == 16
    # on the node: its path, not degraded, its local disk in order (1); no secondary
    assert disk["pstatus"][0].endswith(path) and disk["pstatus"][5:] == [False, 1]
    assert disk["sstatus"] is None
    assert listing(gnt, "uuid")["rvm6"] == [info["uuid"]]
    static = client.run_job("GetInstanceInfo", "rvm6", static=True)
    [data] = client("GetJobStatus", static)["opresult"]
    assert data["rvm6"]["run_state"] is None and data["rvm6"]["disks"][0]["pstatus"] is None

    job_id = client.run_job("GetNodeStorageUnits", "node1", "sharedfile", "name,size,free")
    [rows] = client("GetJobStatus", job_id)["opresult"]
    [[name, size, free]] = rows
    shown = gnt("gnt-node", "list-storage", "--no-headers", "--separator", "|",
                "--storage-type", "sharedfile", "-o", "node,name", "node1")[1]
    assert shown.split() == [f"node1|{name}"] and 0 <= free <= size
    client.run_job("DeleteInstance", "rvm6")
