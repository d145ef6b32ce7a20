"""Instances: the list (filtered, sorted and paginated on the server, from one column-wise
Query), one instance's page (disks with their DRBD state, NICs, parameters, recent jobs),
and its actions, each confirmed on a page of its own, then submitted as its opcode."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlencode

from cardume import constants, opcodes
from cardume.rapi import bodies
from cardume.rapi.http import Response
from cardume.rapi.ui import data, html
from cardume.rapi.ui.context import Ctx, UiError, redirect

LIST_FIELDS = ["name", "status", "pnode", "snodes", "disk_template", "be/maxmem",
               "be/vcpus", "os"]
COLUMNS = {"name": "name", "status": "status", "node": "pnode",
           "template": "disk_template", "memory": "be/maxmem", "vcpus": "be/vcpus",
           "os": "os"}
STATUSES = ("running", "ADMIN_down", "ADMIN_offline", "USER_down", "ERROR_up", "ERROR_down",
            "ERROR_wrongnode", "ERROR_nodedown", "ERROR_nodeoffline")
PER_PAGE = 100
JOBS_LOOK_BACK = 2000  # jobs searched for an instance's recent ones
MAX_PER_PAGE = 1000
MAX_FILTER = 200

# action: (opcode, what the confirmation says, static parameters)
ACTIONS: dict[str, tuple[str, str, dict[str, Any]]] = {
    "start": ("OP_INSTANCE_STARTUP", "Start", {}),
    "stop": ("OP_INSTANCE_SHUTDOWN", "Stop", {}),
    "reboot": ("OP_INSTANCE_REBOOT", "Reboot", {}),
    "migrate": ("OP_INSTANCE_MIGRATE", "Migrate (live, to its secondary)", {}),
    "failover": ("OP_INSTANCE_FAILOVER", "Fail over (stop, then start on its secondary)",
                 {}),
    "remove": ("OP_INSTANCE_REMOVE", "Remove (its disks and every byte on them are deleted)",
               {}),
}
# what the confirmation page lets one choose, each a parameter of the action's opcode (its
# choices, default and help come from the operation table)
ACTION_OPTIONS: dict[str, tuple[str, ...]] = {
    "reboot": ("reboot_type", "ignore_secondaries"),
    "migrate": ("mode", "cleanup", "allow_failover"),
    "failover": ("ignore_consistency",),
    "remove": ("ignore_failures",),
}
DETAIL_FIELDS = ["name", "status", "admin_state", "oper_state", "pnode", "snodes",
                 "disk_template", "os", "hypervisor", "beparams", "hvparams", "osparams",
                 "disk.sizes", "disk.names", "nic.macs", "nic.ips", "nic.modes", "nic.links",
                 "nic.names", "nic.networks", "tags", "ctime", "mtime", "uuid", "network_port"]


def _filter(ctx: Ctx) -> tuple[Any, dict[str, str]]:
    """The Query filter of the list's arguments, and the arguments kept for the links."""
    q, status, node = ctx.arg("q"), ctx.arg("status"), ctx.arg("node")
    kept = {k: v for k, v in (("q", q), ("status", status), ("node", node)) if v}
    if len(q) > MAX_FILTER or len(node) > MAX_FILTER:
        raise UiError(400, f"filter longer than {MAX_FILTER} characters")
    if status and status not in STATUSES:
        raise UiError(400, f"unknown status {status!r} (expected one of "
                           f"{', '.join(STATUSES)})")
    parts: list[Any] = []
    if q:
        parts.append(["=~", "name", re.escape(q)])
    if status:
        parts.append(["==", "status", status])
    if node:
        parts.append(["|", ["==", "pnode", node], ["=[]", "snodes", node]])
    if not parts:
        return None, kept
    return (parts[0] if len(parts) == 1 else ["&", *parts]), kept


def _int_arg(ctx: Ctx, name: str, default: int, top: int) -> int:
    text = ctx.arg(name)
    if not text:
        return default
    if not text.isdigit() or not 1 <= int(text) <= top:
        raise UiError(400, f"{name} must be a number 1..{top}, not {text!r}")
    return int(text)


def _sort_key(field: str) -> Any:
    def key(row: dict[str, Any]) -> Any:
        value = row[field]
        if isinstance(value, int | float):
            return (0, value, "")
        return (1, 0, "" if value is None else str(value))
    return key


async def listing(ctx: Ctx) -> Response:
    qfilter, kept = _filter(ctx)
    sort = ctx.arg("sort", "name")
    if sort not in COLUMNS:
        raise UiError(400, f"cannot sort by {sort!r} (expected one of {', '.join(COLUMNS)})")
    order = ctx.arg("order", "asc")
    if order not in ("asc", "desc"):
        raise UiError(400, f"order must be asc or desc, not {order!r}")
    per = _int_arg(ctx, "per", PER_PAGE, MAX_PER_PAGE)
    found = await data.rows(ctx.master, "instance", LIST_FIELDS, None, qfilter)
    field = COLUMNS[sort]
    found.sort(key=_sort_key("name"))
    if field != "name":
        found.sort(key=_sort_key(field))
    if order == "desc":
        found.reverse()
    pages = max(1, (len(found) + per - 1) // per)
    page = min(_int_arg(ctx, "page", 1, 10**6), pages)
    shown = found[(page - 1) * per:page * per]

    def href(**changes: Any) -> str:
        args = {**kept, "sort": sort, "order": order, "per": str(per), **changes}
        return "/ui/instances?" + urlencode({k: v for k, v in args.items() if v})

    heads = []
    for label, col in (("Name", "name"), ("Status", "status"), ("Primary", "node"),
                       ("Secondaries", ""), ("Template", "template"), ("Memory", "memory"),
                       ("vCPUs", "vcpus"), ("OS", "os")):
        if not col:
            heads.append(label)
            continue
        flip = "desc" if sort == col and order == "asc" else "asc"
        mark = (" ▲" if order == "asc" else " ▼") if sort == col else ""
        heads.append(html.link(href(sort=col, order=flip, page=""), label + mark))
    rows = [[html.link(f"/ui/instances/{r['name']}", r["name"]),
             html.render('<span class="status $s">$s</span>', s=r["status"] or "?"),
             r["pnode"], ", ".join(r["snodes"] or []), r["disk_template"],
             html.mib(r["be/maxmem"]), r["be/vcpus"], r["os"]] for r in shown]
    options = html.join(html.render('<option value="$s"$sel>$s</option>', s=s,
                                    sel=html.attrs_selected(s == kept.get("status")))
                        for s in STATUSES)
    nav = html.render(
        '<p class="pager">$count instance(s); page $page of $pages $prev $next</p>',
        count=len(found), page=page, pages=pages,
        prev=html.link(href(page=str(page - 1)), "« previous") if page > 1 else "",
        next=html.link(href(page=str(page + 1)), "next »") if page < pages else "")
    body = html.render(
        '<form method="get" action="/ui/instances" class="filter">'
        '<label>Name contains <input name="q" value="$q"></label> '
        '<label>Status <select name="status"><option value="">any</option>$options'
        '</select></label> <label>Node <input name="node" value="$node"></label>'
        '<input type="hidden" name="sort" value="$sort">'
        '<input type="hidden" name="order" value="$order">'
        '<button type="submit">Filter</button></form>$nav$table$nav',
        q=kept.get("q", ""), node=kept.get("node", ""), options=options, sort=sort,
        order=order, nav=nav, table=html.table(heads, rows, "instances"))
    return ctx.page("Instances", body, current="/ui/instances")


async def _one(ctx: Ctx, fields: list[str]) -> dict[str, Any]:
    name = ctx.params["name"]
    found = await data.rows(ctx.master, "instance", fields, [name]) if _plausible(name) \
        else []
    if not found:
        raise UiError(404, f"instance {name!r} not found", "Unknown instance")
    return found[0]


def _plausible(name: str) -> bool:
    return 0 < len(name) <= 255 and all(c.isalnum() or c in "-._" for c in name)


def _params_table(values: Any) -> html.Markup:
    if not isinstance(values, dict) or not values:
        return html.Markup("<p>(none)</p>")
    return html.table(["Parameter", "Value"], sorted(values.items()), "params")


async def _disks(ctx: Ctx, inst: dict[str, Any]) -> tuple[html.Markup, bool]:
    """The disks' table, and whether a mirror is resyncing or not yet connected (then the
    page's script refreshes the table every few seconds, as watch-disks would)."""
    sizes = inst["disk.sizes"] or []
    names = inst["disk.names"] or []
    state: dict[int, str] = {}
    moving = False
    if inst["disk_template"] == constants.DT_DRBD8:
        reply = await ctx.master.call("QueryDrbd", [inst["name"]], None)
        for item in reply.get("instances", []):
            for disk in item.get("disks", []):
                state[int(disk.get("index", 0))] = _drbd_text(disk)
                moving = moving or any(
                    (side.get("status") or {}).get("sync_percent") is not None
                    or (side.get("status") or {}).get("cstate") != "Connected"
                    for side in disk.get("sides", []))
    rows = [[i, names[i] if i < len(names) and names[i] else "", html.mib(size),
             state.get(i, "")] for i, size in enumerate(sizes)]
    heads = ["#", "Name", "Size", "DRBD" if state else ""]
    return html.table(heads, rows, "disks"), moving


def _drbd_text(disk: dict[str, Any]) -> str:
    parts = []
    for side in disk.get("sides", []):
        status = side.get("status")
        if status is None:
            parts.append(f"{side.get('node')}: {side.get('error') or 'not set up'}")
            continue
        text = f"{side.get('node')}: {status.get('cstate', '?')} " \
               f"{status.get('role', '?')}/{status.get('disk', '?')}"
        if status.get("sync_percent") is not None:
            text += f", syncing {status['sync_percent']:.1f}%"
        parts.append(text)
    return "; ".join(parts)


async def _recent_jobs(ctx: Ctx, name: str) -> html.Markup:
    assert ctx.jobs is not None
    tail = f"({name})"
    mine = await ctx.jobs.find(lambda j: any(s.endswith(tail) for s in j["summary"] or []),
                               JOBS_LOOK_BACK, 10)
    rows = [[html.link(f"/ui/jobs/{j['id']}", j["id"]), j["status"],
             ", ".join(j["summary"] or [])] for j in mine]
    if not rows:
        return html.render("<p>None among the last $n jobs.</p>", n=JOBS_LOOK_BACK)
    return html.table(["Job", "Status", "Summary"], rows, "jobs")


async def instance(ctx: Ctx) -> Response:
    inst = await _one(ctx, DETAIL_FIELDS)
    facts = [["Status", html.render('<span class="status $s">$s</span>', s=inst["status"])],
             ["Primary node", inst["pnode"]],
             ["Secondary nodes", ", ".join(inst["snodes"] or []) or "-"],
             ["Disk template", inst["disk_template"]], ["OS", inst["os"]],
             ["Hypervisor", inst["hypervisor"]], ["Tags", ", ".join(inst["tags"] or [])],
             ["UUID", inst["uuid"]]]
    nics = [[i, mac, (inst["nic.ips"] or [None] * 99)[i] or "",
             (inst["nic.modes"] or [""] * 99)[i], (inst["nic.links"] or [""] * 99)[i],
             (inst["nic.networks"] or [None] * 99)[i] or ""]
            for i, mac in enumerate(inst["nic.macs"] or [])]
    disks, moving = await _disks(ctx, inst)
    actions = html.Markup("")
    if ctx.access == "write":
        actions = html.join(
            html.render('<a class="button" href="/ui/instances/$n/$a">$label</a>',
                        n=inst["name"], a=a, label=a.capitalize()) for a in ACTIONS)
        actions = html.join([actions, _console_links(inst)], " ")
    body = html.render(
        '<p class="actions">$actions</p>'
        '<section>$facts</section>'
        '<section id="disks" data-refresh="$refresh"><h2>Disks</h2>$disks</section>'
        '<section><h2>NICs</h2>$nics</section>'
        '<section><h2>Backend parameters</h2>$be</section>'
        '<section><h2>Hypervisor parameters</h2>$hv</section>'
        '<section><h2>Recent jobs</h2>$jobs</section>',
        actions=actions, facts=html.table(["", ""], facts, "facts"),
        disks=disks, refresh="1" if moving else "0",
        nics=html.table(["#", "MAC", "IP", "Mode", "Link", "Network"], nics, "nics"),
        be=_params_table(inst["beparams"]), hv=_params_table(inst["hvparams"]),
        jobs=await _recent_jobs(ctx, inst["name"]))
    return ctx.page(f"Instance {inst['name']}", body, current="/ui/instances")


def _console_links(inst: dict[str, Any]) -> html.Markup:
    """Serial and VNC console buttons (pages_console) for a running kvm instance that has
    them."""
    hv = inst["hvparams"] if isinstance(inst["hvparams"], dict) else {}
    if inst["hypervisor"] != "kvm" or not inst["oper_state"]:
        return html.EMPTY
    links = []
    if hv.get("serial_console", True) is not False:
        links.append(("console", "Serial console"))
    if hv.get("vnc_bind_address"):
        links.append(("vnc", "VNC console"))
    return html.join(html.render('<a class="button console" href="/ui/instances/$n/$s">'
                                 '$label</a>', n=inst["name"], s=seg, label=label)
                     for seg, label in links)


def _action(ctx: Ctx) -> tuple[str, str, dict[str, Any]]:
    action = ctx.params["action"]
    if action not in ACTIONS:
        raise UiError(404, f"unknown instance action {action!r} (expected one of "
                           f"{', '.join(ACTIONS)})", "Not found")
    return ACTIONS[action]


def _option_params(action: str) -> list[Any]:
    cls = opcodes.REGISTRY[ACTIONS[action][0]]
    return [cls._ALL[name] for name in ACTION_OPTIONS.get(action, ())]


def _option_fields(action: str) -> html.Markup:
    """The action's options as form fields: a choice list or a checkbox each."""
    fields = []
    for param in _option_params(action):
        if param.choices:
            default = f"(default: {param.default})" if param.default is not None else \
                "(default)"
            options = html.join([html.render('<option value="">$d</option>', d=default)] + [
                html.render('<option value="$c">$c</option>', c=c) for c in param.choices])
            fields.append(html.render('<label>$doc <select name="$name">$options</select>'
                                      '</label>', doc=param.doc, name=param.name,
                                      options=options))
        else:
            fields.append(html.render('<label><input type="checkbox" name="$name" value="1">'
                                      ' $doc</label>', name=param.name, doc=param.doc))
    return html.join(fields)


def _options(ctx: Ctx, action: str) -> dict[str, Any]:
    """The options chosen on the confirmation page (the table checks them again)."""
    chosen: dict[str, Any] = {}
    for param in _option_params(action):
        value = ctx.field(param.name)
        if not value:
            continue
        if param.choices:
            match = [c for c in param.choices if str(c) == value]
            if not match:
                raise UiError(400, f"{param.name} must be one of "
                                   f"{', '.join(map(str, param.choices))}, not {value!r}")
            chosen[param.name] = match[0]
        elif value == "1":
            chosen[param.name] = True
        else:
            raise UiError(400, f"{param.name} must be checked (1) or left out, not {value!r}")
    return chosen


async def confirm(ctx: Ctx) -> Response:
    _, what, _ = _action(ctx)
    inst = await _one(ctx, ["name", "status", "pnode", "snodes"])
    form = html.render(
        '<p>$what instance <strong>$name</strong> (now $status, on $pnode)?</p>'
        '<form method="post" action="/ui/instances/$name/$action" class="confirm">$csrf'
        '$options<button type="submit" class="$css">$label</button> '
        '<a href="/ui/instances/$name">Cancel</a></form>',
        what=what, name=inst["name"], status=inst["status"], pnode=inst["pnode"],
        action=ctx.params["action"], csrf=html.csrf_field(ctx.csrf),
        options=_option_fields(ctx.params["action"]),
        css="danger" if ctx.params["action"] == "remove" else "",
        label=f"Yes, {ctx.params['action']} {inst['name']}")
    return ctx.page(f"Confirm: {ctx.params['action']} {inst['name']}", form,
                    current="/ui/instances")


async def act(ctx: Ctx) -> Response:
    op_id, _, static = _action(ctx)
    inst = await _one(ctx, ["name"])
    op = bodies.build_op(op_id, {}, {"instance_name": inst["name"], **static,
                                     **_options(ctx, ctx.params["action"])})
    op["reason"] = ctx.reason()
    job_id = await ctx.master.call("SubmitJob", [op])
    return redirect(f"/ui/jobs/{int(job_id)}")
