"""The cluster dashboard: each node's memory, disk and vCPUs used against its total, its
role; what the last `gnt-cluster verify` found; how many more standard instances fit (the
last capacity report, with N+1 as its limit when that is what runs out first). Verify and
capacity run as jobs (buttons submit them)."""

from __future__ import annotations

import time
from typing import Any

from cardume import constants
from cardume.rapi.http import Response
from cardume.rapi.ui import data, html
from cardume.rapi.ui.context import Ctx, UiError, redirect

NODE_FIELDS = ["name", "role", "offline", "drained", "master_candidate", "group", "mtotal",
               "mfree", "dtotal", "dfree", "ctotal", "pinst_cnt", "sinst_cnt"]
ROLES = {"M": "master", "C": "candidate", "R": "regular", "D": "drained", "O": "offline"}
JOB_FIELDS = ["id", "status", "end_ts", "oplog", "opresult"]
INSTANCE_FIELDS = ["pnode", "snodes", "be/vcpus", "be/minmem", "be/auto_balance"]
LOOK_BACK = 5000  # jobs searched for the last verify and capacity report
CHECKS = {"verify": "OP_CLUSTER_VERIFY", "capacity": "OP_CLUSTER_CAPACITY"}


def _vcpus_by_node(instances: list[dict[str, Any]]) -> dict[str, int]:
    used: dict[str, int] = {}
    for inst in instances:
        vcpus = inst.get("be/vcpus")
        if isinstance(vcpus, int) and inst.get("pnode"):
            used[inst["pnode"]] = used.get(inst["pnode"], 0) + vcpus
    return used


def n_plus_one(nodes: list[dict[str, Any]], instances: list[dict[str, Any]]
               ) -> dict[str, str]:
    """Each node's N+1 status, as Ganeti's verify checks it: should any one node fail, the
    instances it is primary of and this node is secondary of (those that auto-balance) must
    fit in this node's free memory (their minimum memory). "" when it holds; else why not."""
    need: dict[tuple[str, str], int] = {}
    for inst in instances:
        if inst.get("be/auto_balance") is False or not isinstance(inst.get("be/minmem"), int):
            continue
        for snode in inst.get("snodes") or []:
            key = (snode, inst["pnode"])
            need[key] = need.get(key, 0) + inst["be/minmem"]
    free = {n["name"]: n["mfree"] for n in nodes}
    result = {n["name"]: "" for n in nodes}
    for (snode, pnode), memory in sorted(need.items()):
        have = free.get(snode)
        if isinstance(have, int) and memory > have and not result.get(snode):
            result[snode] = (f"fails: if {pnode} fails, its instances need {html.mib(memory)} "
                             f"here, {html.mib(have)} free")
    return result


def _node_row(node: dict[str, Any], vcpus: int, n1: str) -> list[Any]:
    mtotal, mfree = node["mtotal"], node["mfree"]
    dtotal, dfree = node["dtotal"], node["dfree"]
    mused = mtotal - mfree if isinstance(mtotal, int) and isinstance(mfree, int) else None
    dused = dtotal - dfree if isinstance(dtotal, int) and isinstance(dfree, int) else None
    ctotal = node["ctotal"]
    roles = [ROLES.get(node["role"], str(node["role"]))]
    if node["master_candidate"] and "candidate" not in roles and roles[0] != "master":
        roles.append("candidate")
    if node["drained"] and "drained" not in roles:
        roles.append("drained")
    if node["offline"] and "offline" not in roles:
        roles.append("offline")
    return [
        html.link(f"/ui/instances?node={node['name']}", node["name"]),
        html.join((html.render('<span class="role $r">$r</span>', r=r) for r in roles), " "),
        html.bar("memory", mused, mtotal, f"{html.mib(mused)} / {html.mib(mtotal)}"),
        html.bar("disk", dused, dtotal, f"{html.mib(dused)} / {html.mib(dtotal)}"),
        html.bar("vCPUs", vcpus, ctotal, f"{vcpus} / {ctotal if ctotal is not None else '?'}"),
        f"{node['pinst_cnt']} / {node['sinst_cnt']}",
        html.render('<span class="n1 $css">$text</span>', css="bad" if n1 else "ok",
                    text=n1 or ("ok" if node["mfree"] is not None else "?")),
    ]


def _age(stamp: Any) -> str:
    if isinstance(stamp, list) and stamp:
        stamp = stamp[0]
    if not isinstance(stamp, int | float):
        return ""
    minutes = int((time.time() - stamp) // 60)
    if minutes < 1:
        return "just now"
    if minutes < 120:
        return f"{minutes} min ago"
    return f"{minutes // 60} h ago"


def _verify_section(ctx: Ctx, job: dict[str, Any] | None) -> html.Markup:
    button = _run_button(ctx, "verify", "Run verify")
    if job is None:
        return html.render('<p>No verify among the last $n jobs. $button</p>', n=LOOK_BACK,
                           button=button)
    problems = [line[3].strip() for line in data.log_lines(job["oplog"])
                if "ERROR" in line[3] or "WARNING" in line[3]]
    status = job["status"]
    if status in constants.JOBS_FINALIZED:
        ok = status == constants.JOB_STATUS_SUCCESS and job["opresult"] == [True]
        verdict = "no problems found" if ok and not problems else \
            f"{len(problems)} problem(s) found" if problems else f"ended: {status}"
    else:
        verdict = f"running ({status})"
    items = html.join(html.render("<li>$p</li>", p=p) for p in problems[:50])
    more = f"… and {len(problems) - 50} more" if len(problems) > 50 else ""
    return html.render(
        '<p>Last verify: <a href="/ui/jobs/$id">job $id</a>, $age: <strong>$verdict'
        '</strong>. $button</p><ul class="problems">$items</ul><p>$more</p>',
        id=job["id"], age=_age(job["end_ts"]), verdict=verdict, items=items, more=more,
        button=button)


def _capacity_section(ctx: Ctx, job: dict[str, Any] | None) -> html.Markup:
    button = _run_button(ctx, "capacity", "Compute capacity")
    report = None
    if job is not None and isinstance(job["opresult"], list) and job["opresult"] and \
            isinstance(job["opresult"][0], dict) and "total" in job["opresult"][0]:
        report = job["opresult"][0]
    if report is None:
        what = f"No capacity report among the last {LOOK_BACK} jobs." if job is None else \
            html.render('The last capacity job (<a href="/ui/jobs/$id">$id</a>) has no '
                        'report ($status).', id=job["id"], status=job["status"])
        return html.render("<p>$what $button</p>", what=what, button=button)
    rows = []
    n1 = []
    for group in report.get("groups", []):
        spec = group.get("spec", {})
        rows.append([group.get("group"), group.get("count"), group.get("limit"),
                     f"{html.mib(spec.get('memory'))} memory, {html.mib(spec.get('disk'))} "
                     f"disk, {spec.get('vcpus')} vCPU, {spec.get('disk_template')}"])
        if group.get("limit") == "N+1":
            n1.append(str(group.get("group")))
    n1_text = (f"N+1 is what limits group(s) {', '.join(n1)}: one more instance there "
               "would leave a node's instances nowhere to fail over") if n1 else ""
    return html.render(
        '<p><strong>$total</strong> more standard instances fit (report of '
        '<a href="/ui/jobs/$id">job $id</a>, $age). $button</p>$table<p class="n1">$n1</p>',
        total=report.get("total"), id=job["id"] if job else "", age=_age(job and
                                                                           job["end_ts"]),
        button=button, n1=n1_text,
        table=html.table(["Group", "Fit", "Runs out first", "Standard instance"], rows))


async def last_job(ctx: Ctx, summary: str) -> dict[str, Any] | None:
    """The newest job among the last LOOK_BACK with an opcode ``summary``, with its log and
    result."""
    assert ctx.jobs is not None
    found = await ctx.jobs.find(lambda row: summary in (row["summary"] or []), LOOK_BACK)
    if not found:
        return None
    rows = await data.rows(ctx.master, "job", JOB_FIELDS, [str(found[0]["id"])])
    return rows[0] if rows else None


def _run_button(ctx: Ctx, what: str, label: str) -> html.Markup:
    if ctx.access != "write":
        return html.Markup("")
    return html.post_button(f"/ui/cluster/{what}", label, ctx.csrf, "small")


async def dashboard(ctx: Ctx) -> Response:
    nodes = await data.rows(ctx.master, "node", NODE_FIELDS)
    instances = await data.rows(ctx.master, "instance", INSTANCE_FIELDS)
    verify = await last_job(ctx, "CLUSTER_VERIFY")
    capacity = await last_job(ctx, "CLUSTER_CAPACITY")
    used = _vcpus_by_node(instances)
    n1 = n_plus_one(nodes, instances)
    table = html.table(["Node", "Role", "Memory", "Disk", "vCPUs", "Instances (pri/sec)",
                        "N+1"],
                       [_node_row(n, used.get(n["name"], 0), n1[n["name"]]) for n in nodes],
                       "nodes")
    failing = sum(1 for v in n1.values() if v)
    n1_line = f"N+1: {failing} node(s) could not take over a failed peer's instances" \
        if failing else "N+1: every node can take over its peers' mirrored instances"
    body = html.render(
        '<section><h2>Nodes</h2>$table<p class="n1">$n1</p><p>$count instances on $nodes '
        'nodes. '
        '<a href="/ui/instances">All instances</a></p></section>'
        '<section><h2>Verify</h2>$verify</section>'
        '<section><h2>Capacity</h2>$capacity</section>',
        table=table, n1=n1_line, count=len(instances), nodes=len(nodes),
        verify=_verify_section(ctx, verify), capacity=_capacity_section(ctx, capacity))
    return ctx.page("Cluster", body, current="/ui/")


async def run_check(ctx: Ctx) -> Response:
    """Submit verify or capacity as a job and show that job."""
    op_id = CHECKS.get(ctx.params["what"])
    if op_id is None:
        raise UiError(404, f"unknown cluster check {ctx.params['what']!r} (expected "
                           f"{' or '.join(CHECKS)})", "Not found")
    job_id = await ctx.master.call("SubmitJob", [{"OP_ID": op_id, "reason": ctx.reason()}])
    return redirect(f"/ui/jobs/{int(job_id)}")
