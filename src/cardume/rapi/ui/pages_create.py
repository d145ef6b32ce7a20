"""The create form: OP_INSTANCE_CREATE's parameters as `gnt-instance add` takes them.

Each field is the text of one of gnt-instance add's options (a disk line is a ``--disk``
value, the backend field a ``-B`` value ...), and the form's values go through the very
function that builds the command's opcode (``cli.instance_add.build_create_op``), then the
master's checks of the operation table: the same validation and the same one-line errors.
A refused form is shown again with its values and the error; nothing is created.
"""

from __future__ import annotations

import argparse
from typing import Any

from cardume import constants, errors, opcodes
from cardume.cli.instance_add import build_create_op
from cardume.rapi.http import Response
from cardume.rapi.ui import data, html
from cardume.rapi.ui.context import Ctx, redirect

# each field's OP_INSTANCE_CREATE parameter: its help text (the table's) is the label's title
FIELD_PARAMS = {
    "name": "instance_name", "disk_template": "disk_template", "os": "os_type",
    "memory": "beparams", "vcpus": "beparams", "disk_size": "disks", "disks": "disks",
    "pnode": "pnode", "snode": "snode", "iallocator": "iallocator", "group": "group_name",
    "nics": "nics", "beparams": "beparams", "hvparams": "hvparams", "osparams": "osparams",
    "tags": "tags", "start": "start", "name_check": "name_check",
    "ip_check": "ip_check", "wait_for_sync": "wait_for_sync",
    "ignore_ipolicy": "ignore_ipolicy"}
TEXT_FIELDS = ("name", "disk_template", "disk_size", "disks", "memory", "vcpus", "beparams",
               "os", "pnode", "snode", "iallocator", "group", "nics", "hvparams", "osparams",
               "tags")
CHECKBOXES = {"start": True, "install": True, "name_check": True, "ip_check": True,
              "wait_for_sync": True, "no_nics": False, "ignore_ipolicy": False}

_CREATE = opcodes.REGISTRY["OP_INSTANCE_CREATE"]

_FORM = """<form method="post" action="/ui/create" class="create">$csrf
<fieldset><legend>Instance</legend>
<label title="$doc_name">Name <input name="name" value="$name" required></label>
<label title="$doc_disk_template">Disk template
<select name="disk_template">$templates</select></label>
<label title="$doc_os">OS <select name="os">$oses</select></label>
<label title="$doc_memory">Memory (-B memory)
<input name="memory" value="$memory" placeholder="e.g. 512M"></label>
<label title="$doc_vcpus">vCPUs (-B vcpus)
<input name="vcpus" value="$vcpus" placeholder="e.g. 1"></label>
</fieldset>
<fieldset><legend>Disks</legend>
<label title="$doc_disk_size">Size of one disk (-s)
<input name="disk_size" value="$disk_size" placeholder="e.g. 1G"></label>
<label title="$doc_disks">Or disks, one a line (--disk)
<textarea name="disks" rows="2" placeholder="0:size=1G&#10;1:size=512M,name=data">$disks</textarea>
</label>
</fieldset>
<fieldset><legend>Placement</legend>
<label title="$doc_pnode">Primary node (-n) <select name="pnode">$pnodes</select></label>
<label title="$doc_snode">Secondary node <select name="snode">$snodes</select></label>
<label title="$doc_iallocator">Allocator (-I)
<input name="iallocator" value="$iallocator" placeholder="empty: the cluster's default"></label>
<label title="$doc_group">Node group (-g) <input name="group" value="$group"></label>
</fieldset>
<fieldset><legend>Network</legend>
<label title="$doc_nics">NICs, one a line (--net)
<textarea name="nics" rows="2" placeholder="0:mode=bridged,link=br0">$nics</textarea></label>
<label title="$doc_no_nics"><input type="checkbox" name="no_nics" value="1"$no_nics>
no NICs (--no-nics)</label>
</fieldset>
<fieldset><legend>More</legend>
<label title="$doc_beparams">Backend parameters (-B)
<input name="beparams" value="$beparams" placeholder="auto_balance=true"></label>
<label title="$doc_hvparams">Hypervisor parameters (-H)
<input name="hvparams" value="$hvparams" placeholder="kvm:kernel_path=/vmlinuz"></label>
<label title="$doc_osparams">OS parameters (-O)
<input name="osparams" value="$osparams"></label>
<label title="$doc_tags">Tags (--tags) <input name="tags" value="$tags" placeholder="a,b">
</label>
<label title="$doc_start"><input type="checkbox" name="start" value="1"$start>
start it</label>
<label title="$doc_install"><input type="checkbox" name="install" value="1"$install>
install the OS</label>
<label title="$doc_name_check">
<input type="checkbox" name="name_check" value="1"$name_check> check the name resolves</label>
<label title="$doc_ip_check"><input type="checkbox" name="ip_check" value="1"$ip_check>
check its address is free</label>
<label title="$doc_wait_for_sync">
<input type="checkbox" name="wait_for_sync" value="1"$wait_for_sync>
wait for mirrored disks to sync</label>
<label title="$doc_ignore_ipolicy">
<input type="checkbox" name="ignore_ipolicy" value="1"$ignore_ipolicy>
ignore the instance policy</label>
</fieldset>
<input type="hidden" name="submitted" value="1">
<button type="submit">Create</button>
</form>"""


def _options(choices: list[tuple[str, str]], chosen: str) -> html.Markup:
    return html.join(html.render('<option value="$v"$sel>$label</option>', v=v, label=label,
                                 sel=html.attrs_selected(v == chosen))
                     for v, label in choices)


async def _choices(ctx: Ctx) -> tuple[list[str], list[str], list[str], str]:
    """Enabled disk templates, OS names (name+variant), node names, default template."""
    info = await ctx.master.call("QueryClusterInfo")
    templates = list(info.get("enabled_disk_templates") or constants.DISK_TEMPLATES)
    oses: list[str] = []
    for entry in await ctx.master.call("QueryOs"):
        if not entry.get("valid"):
            continue
        variants = entry.get("variants") or []
        oses.extend(f"{entry['name']}+{v}" for v in variants) if variants else \
            oses.append(entry["name"])
    nodes = [n["name"] for n in await data.rows(ctx.master, "node", ["name", "vm_capable"])
             if n["vm_capable"]]
    return templates, oses, nodes, str(info.get("default_disk_template") or templates[0])


async def _show(ctx: Ctx, values: dict[str, str], flags: dict[str, bool], status: int = 200,
                error: str = "") -> Response:
    templates, oses, nodes, default = await _choices(ctx)
    if values.get("os") and values["os"] not in oses:
        oses.insert(0, values["os"])
    node_choices = [("", "(the allocator chooses)")] + [(n, n) for n in nodes]
    body = html.render(
        _FORM, csrf=html.csrf_field(ctx.csrf),
        templates=_options([(t, t) for t in templates], values.get("disk_template") or
                           default),
        oses=_options([("", "(none)")] + [(o, o) for o in oses], values.get("os", "")),
        pnodes=_options(node_choices, values.get("pnode", "")),
        snodes=_options([("", "(none)")] + [(n, n) for n in nodes], values.get("snode", "")),
        **{k: values.get(k, "") for k in TEXT_FIELDS if k not in
           ("disk_template", "os", "pnode", "snode")},
        **{k: html.attrs_selected(v, "checked") for k, v in flags.items()},
        **{f"doc_{k}": _CREATE._ALL[p].doc for k, p in FIELD_PARAMS.items()},
        doc_no_nics="no network interface at all",
        doc_install="run the OS create script (unchecked: --no-install)")
    return ctx.page("Create an instance", body, status=status, current="/ui/create",
                    flash=error)


async def form(ctx: Ctx) -> Response:
    return await _show(ctx, {}, dict(CHECKBOXES))


def _lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip()]


def build_op(values: dict[str, str], flags: dict[str, bool]) -> dict[str, Any]:
    """OP_INSTANCE_CREATE from the form, by gnt-instance add's own rules."""
    if not values["name"]:
        raise errors.WrongInput("the instance needs a name")
    be = [f"memory={values['memory']}"] if values["memory"] else []
    be += [f"vcpus={values['vcpus']}"] if values["vcpus"] else []
    be += [values["beparams"]] if values["beparams"] else []
    node = None
    if values["pnode"]:
        node = values["pnode"] + (f":{values['snode']}" if values["snode"] else "")
    elif values["snode"]:
        raise errors.WrongInput(f"secondary node {values['snode']!r} given without a "
                                "primary node")
    args = argparse.Namespace(
        instance=values["name"], disk_template=values["disk_template"] or None,
        disks=_lines(values["disks"]), sd_size=values["disk_size"] or None,
        nics=_lines(values["nics"]), no_nics=flags["no_nics"], node=node,
        iallocator=values["iallocator"] or None, no_name_check=not flags["name_check"],
        no_ip_check=not flags["ip_check"], hvparams=values["hvparams"] or None,
        beparams=",".join(be) or None, osparams=values["osparams"] or None,
        os=values["os"] or None, ignore_ipolicy=flags["ignore_ipolicy"],
        no_start=not flags["start"], no_install=not flags["install"],
        file_storage_dir=None, file_driver=None, wait_for_sync=flags["wait_for_sync"],
        tags=values["tags"] or None, force_variant=False, group_name=values["group"] or None,
        no_conflicts_check=False)
    return build_create_op(args)


async def submit(ctx: Ctx) -> Response:
    values = {k: ctx.field(k) for k in TEXT_FIELDS}
    values["disks"] = "\n".join(ctx.form.get("disks", [""])[-1:]).strip()
    values["nics"] = "\n".join(ctx.form.get("nics", [""])[-1:]).strip()
    flags = {k: ctx.field(k) == "1" for k in CHECKBOXES}
    try:
        op = build_op(values, flags)
        op["reason"] = ctx.reason()
        job_id = await ctx.master.call("SubmitJob", [op])
    except errors.CardumeError as err:
        status = err.http_status if 400 <= err.http_status < 500 else 400
        return await _show(ctx, values, flags, status, str(err))
    return redirect(f"/ui/jobs/{int(job_id)}")
