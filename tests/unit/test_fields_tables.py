"""The node, group and job field tables: Ganeti 3.0's names, titles and kinds (the
references in tests/unit/data were captured with ``gnt-node|group|job list-fields`` on a real
Ganeti 3.0.2), and values read through the master's real query path (lu_kit: real node
daemons answering node_info, a real job queue)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import lu_kit
import pytest

from cardume import opcodes
from cardume.jobs.queue import Job
from cardume.master import query
from cardume.master.fields import NODATA, UNAVAIL, QField
from cardume.master.fields_job import job_fields, pair, per_opcode_log
from cardume.master.fields_node import group_fields, node_fields

DATA = Path(__file__).parent / "data"
#: Ganeti's list-fields type names -> the kind a Query reply carries (Ganeti's too).
WIRE_KINDS = {"Text": "text", "Number": "number", "Storage size": "unit",
              "Boolean": "bool", "Timestamp": "timestamp", "Custom": "other",
              "Floating-point number": "float"}
#: Fields cardume adds to Ganeti's tables.
EXTRAS = {"node": {"port", "version", "hypervisors"}, "group": set(), "job": {"waiting_for"}}
TABLES = {"node": node_fields, "group": group_fields, "job": job_fields}


def reference(what: str) -> dict[str, tuple[str, str, str]]:
    """name -> (title, wire kind, description) from Ganeti's list-fields table."""
    lines = (DATA / f"ganeti-{what}-list-fields.txt").read_text().splitlines()
    header = lines[0]
    kind_at, title_at, doc_at = (header.index(w) for w in ("Type", "Title", "Description"))
    return {line[:kind_at].strip(): (line[title_at:doc_at].strip(),
                                     WIRE_KINDS[line[kind_at:title_at].strip()],
                                     line[doc_at:].strip()) for line in lines[1:]}


@pytest.mark.parametrize("what", sorted(TABLES))
def test_the_table_has_ganetis_names_titles_and_kinds(what: str) -> None:
    fields: list[QField] = TABLES[what]()
    ours = {f.name: (f.definition()["title"], f.definition()["kind"]) for f in fields}
    theirs = reference(what)
    assert sorted(set(theirs) - set(ours)) == []
    assert sorted(set(ours) - set(theirs)) == sorted(EXTRAS[what])
    assert {n: ours[n] for n in theirs if ours[n] != theirs[n][:2]} == {}


def _digest(text: str) -> str:
    """The reference keeps a digest of each Ganeti description, not its words."""
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@pytest.mark.parametrize("what", sorted(TABLES))
def test_every_field_is_listed_once_with_a_description_of_its_own(what: str) -> None:
    fields: list[QField] = TABLES[what]()
    assert len({f.name for f in fields}) == len(fields)
    docs = {name: doc for name, (_t, _k, doc) in reference(what).items()}
    assert [f.name for f in fields if not f.doc or _digest(f.doc) == docs.get(f.name)] == []


def test_the_query_tables_serve_the_same_fields() -> None:
    for what, table in TABLES.items():
        assert [d["name"] for d in query.field_definitions(what, None)] == [
            f.name for f in table()]


# --- values through the real query path ---------------------------------------------------------

@pytest.fixture(scope="module")
def kit(tmp_path_factory: pytest.TempPathFactory) -> Iterator[lu_kit.LuKit]:
    """node1 (master) and node2 in group "default"; file and diskless storage (no LVM)."""
    made = lu_kit.make(tmp_path_factory.mktemp("kit"), nodes=("node1", "node2"),
                       templates=("file", "diskless"))
    try:
        yield made
    finally:
        made.close()


def rows(kit: lu_kit.LuKit, what: str, fields: list[str], names: list[str] | None = None
         ) -> dict[Any, dict[str, Any]]:
    """first field's value -> {field: value}, through JSON as on the wire."""
    reply = kit.sync(query.run_query(kit, what, fields, names))  # type: ignore[arg-type]
    reply = json.loads(json.dumps(reply))
    return {row[0]: dict(zip(fields, row, strict=True)) for row in reply["data"]}


def test_node_values(kit: lu_kit.LuKit) -> None:
    got = rows(kit, "node", ["name", "master", "role", "mtotal", "mfree", "ctotal", "bootid",
                             "sptotal", "spfree", "powered", "hv_state", "disk_state",
                             "ndp/ssh_port", "ndp/exclusive_storage", "ndp/cpu_speed",
                             "ndp/oob_program", "pinst_list", "tags"])
    node1 = got["node1"]
    assert (node1["master"], node1["role"], got["node2"]["master"]) == (True, "M", False)
    assert isinstance(node1["mtotal"], int) and 0 <= node1["mfree"] <= node1["mtotal"]
    assert node1["ctotal"] >= 1 and isinstance(node1["bootid"], str)
    # what cardume does not have: the marks Ganeti gives on a cluster without it
    assert [node1[f] for f in ("sptotal", "spfree")] == [NODATA, NODATA]
    assert [node1[f] for f in ("powered", "hv_state", "disk_state")] == [UNAVAIL] * 3
    assert [node1[f] for f in ("ndp/ssh_port", "ndp/exclusive_storage", "ndp/cpu_speed",
                               "ndp/oob_program", "pinst_list", "tags")] == [
        22, False, 1.0, "", [], []]


def test_group_values_merged_and_custom(kit: lu_kit.LuKit) -> None:
    group = kit.cfg.expand_group("default")
    got = rows(kit, "group", ["name", "node_cnt", "node_list", "diskparams",
                              "custom_diskparams", "ipolicy", "custom_ipolicy",
                              "ndparams", "ndp/spindle_count"])["default"]
    assert (got["node_cnt"], got["node_list"]) == (2, ["node1", "node2"])
    assert got["custom_diskparams"] == group.diskparams == {}
    assert got["diskparams"]["drbd"]["resync-rate"] == 61440  # every template, merged
    assert {"file", "plain", "drbd", "diskless"} <= set(got["diskparams"])
    assert got["custom_ipolicy"] == {} and "minmax" in got["ipolicy"]
    assert got["ndparams"]["ssh_port"] == 22 and got["ndp/spindle_count"] == 1


def test_job_values_take_ganetis_shapes(kit: lu_kit.LuKit) -> None:
    kit.run("OP_TEST_DELAY", duration=0)
    job_id = kit.last_job.id if kit.last_job else 0
    got = rows(kit, "job", ["id", "status", "archived", "received_ts", "start_ts", "end_ts",
                            "opstart", "opexec", "opend", "oplog", "summary",
                            "oppriority"])[job_id]
    assert (got["status"], got["archived"], got["summary"]) == (
        "success", False, ["TEST_DELAY(0)"])
    received, start, end = got["received_ts"], got["start_ts"], got["end_ts"]
    assert all(len(t) == 2 and 0 <= t[1] < 1_000_000 for t in (received, start, end))
    assert received <= start <= end
    assert len(got["opstart"]) == len(got["opend"]) == len(got["oplog"]) == 1
    assert got["oppriority"] == [0]
    assert kit.queue.archive([job_id]) == 1
    assert job_id not in rows(kit, "job", ["id"])  # gone from the list, asked by id:
    assert rows(kit, "job", ["id", "archived"], [str(job_id)])[job_id]["archived"] is True


def test_times_are_seconds_and_microseconds() -> None:
    assert pair(1796358111.144193) == [1796358111, 144193]
    assert pair(10.9999999) == [11, 0]  # rounding carries into the seconds
    assert pair(None) is None


def test_the_log_is_split_per_opcode_by_start_time() -> None:
    ops = [opcodes.OpCode.from_dict({"OP_ID": "OP_TEST_DELAY", "duration": 0})
           for _ in range(2)]
    job = Job(7, ops, 0)
    job.op_start_ts = [100.0, 200.0]
    job.log = [(1, 150.5, "message", "first"), (2, 250.0, "message", "second"),
               (3, 260.0, "message", "third")]
    assert per_opcode_log(job) == [
        [[1, [150, 500000], "message", "first"]],
        [[2, [250, 0], "message", "second"], [3, [260, 0], "message", "third"]]]
