"""Query fields of every listable resource, computed on the master.

The tables are in fields_node, fields_instance and fields_job (made of fields.QField).
``run_query`` returns the definitions of the requested fields together with the rows, so
the CLI formats a table in one round trip. Live node data (memory, disk, CPUs) comes from
one parallel ``node_info`` call, made only when a requested field (or one the filter reads)
needs it. A filter (Ganeti's query filter language, see qfilter) keeps the rows it matches;
given with names, a row must be named and match.
"""

from __future__ import annotations

import contextlib
import gc
import json
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from cardume import errors
from cardume.jobs import ids as job_ids
from cardume.master.fields import QField
from cardume.master.fields_instance import InstanceQuery, instance_fields
from cardume.master.fields_job import JobQuery, job_fields
from cardume.master.fields_network import list_networks, network_fields
from cardume.master.fields_node import NodeQuery, group_fields, node_fields
from cardume.master.qfilter import compile_filter

if TYPE_CHECKING:
    from cardume.master.view import MasterView


FIELDS: dict[str, dict[str, QField]] = {
    "node": {f.name: f for f in node_fields()},
    "group": {f.name: f for f in group_fields()},
    "job": {f.name: f for f in job_fields()},
    "instance": {f.name: f for f in instance_fields()},
    "network": {f.name: f for f in network_fields()},
}


def field_definitions(what: str, names: list[str] | None) -> list[dict[str, str]]:
    table = _table(what)
    if not names:
        return [f.definition() for f in table.values()]
    return [_field(table, what, n).definition() for n in names]


def _table(what: str) -> dict[str, QField]:
    table = FIELDS.get(what)
    if table is None:
        raise errors.WrongInput(f"unknown query resource '{what}' "
                                f"(known: {', '.join(sorted(FIELDS))})")
    return table


def _field(table: dict[str, QField], what: str, name: str) -> QField:
    field = table.get(name)
    if field is None:
        raise errors.WrongInput(f"unknown field '{name}' for {what} "
                                f"(see 'gnt-{what} list-fields')")
    return field


async def run_query(daemon: MasterView, what: str, fields: list[str],
                    names: list[str] | None, qfilter: Any = None) -> dict[str, Any]:
    asked = await _gather(daemon, what, fields, names, qfilter)
    with no_gc():
        answer = _answer(*asked)
        answer["data"] = list(map(list, answer["data"]))  # rows as lists in process
        return answer


async def encoded_query(daemon: MasterView, what: str, fields: list[str],
                        names: list[str] | None, qfilter: Any = None) -> bytes:
    """run_query's answer as JSON. Encoded before the collector is back on: by then the
    rows are freed, so no collection walks (and promotes) tens of thousands of them."""
    asked = await _gather(daemon, what, fields, names, qfilter)
    with no_gc():
        return json.dumps(_answer(*asked), separators=(",", ":"),
                          check_circular=False).encode()


async def _gather(daemon: MasterView, what: str, fields: list[str], names: list[str] | None,
                  qfilter: Any) -> tuple[list[QField], Any, list[Any], Any]:
    """The fields asked, the compiled filter, the objects and the context to compute from."""
    table = _table(what)
    selected = [_field(table, what, n) for n in fields]
    compiled = None if qfilter is None else compile_filter(qfilter, table, what)
    # the filter's fields are computed too, requested or not (live ones fetched likewise)
    live_needed = any(f.live for f in selected) or (
        compiled is not None and any(f.live for f in compiled.fields))
    objects_, context = await prepare(daemon, what, names, live_needed)
    return selected, compiled, objects_, context


def _answer(selected: list[QField], compiled: Any, objects_: list[Any],
            context: Any) -> dict[str, Any]:
    if compiled is not None:
        objects_ = _matching(compiled, context, objects_)
    # column by column: a field's values for every object in one call, then one row per
    # object (tuples; they travel as JSON arrays like lists)
    columns = [f.values(context, objects_) for f in selected]
    rows: list[Any] = list(zip(*columns, strict=True)) if columns else [() for _ in objects_]
    return {"fields": [f.definition() for f in selected], "data": rows}


def _matching(compiled: Any, context: Any, objects_: list[Any]) -> list[Any]:
    """The objects whose values of the filter's fields it matches."""
    tested = [f.values(context, objects_) for f in compiled.fields]
    matches = compiled.matches
    return [obj for obj, *values in zip(objects_, *tested, strict=True) if matches(values)]


async def prepare(daemon: MasterView, what: str, names: list[str] | None,
                  live_needed: bool) -> tuple[list[Any], Any]:
    """The objects a query lists (those named, or all in name order) and the context its
    getters read, with live data from the nodes when ``live_needed``."""
    _table(what)  # an unknown resource is refused before any node call
    cfg = daemon.cfg
    if what == "node":
        nodes = ([cfg.expand_node(n) for n in names] if names else cfg.sorted_nodes())
        live: dict[str, Any] = {}
        if live_needed:
            results = await daemon.rpc.each([n for n in nodes if not n.offline],
                                            daemon.rpc.node_info)
            live = {name: r.value for name, r in results.items() if r.error is None}
        return nodes, NodeQuery(daemon, live)
    if what == "group":
        groups = ([cfg.expand_group(n) for n in names] if names
                  else sorted(cfg.groups.values(), key=lambda g: g.name))
        return groups, NodeQuery(daemon, {})
    if what == "network":
        return list_networks(daemon, names)
    if what == "instance":
        instances = ([cfg.expand_instance(n) for n in names] if names
                     else cfg.sorted_instances())
        running: dict[str, dict[str, Any]] = {}
        unreachable: set[str] = set()
        if live_needed:
            hypervisors = cfg.get_cluster().enabled_hypervisors
            nodes = [n for n in cfg.nodes.values() if not n.offline and n.vm_capable]
            results = await daemon.rpc.each(nodes, daemon.rpc.instance_info_all,
                                            list(hypervisors))
            for name, result in results.items():
                if result.error is None:
                    running[name] = result.value
                else:
                    unreachable.add(name)
        return instances, InstanceQuery(daemon, running, unreachable)
    wanted = [job_ids.parse(n) for n in names] if names else daemon.queue.job_ids()
    return [daemon.queue.get(i) for i in wanted], JobQuery(daemon)


@contextlib.contextmanager
def no_gc() -> Iterator[None]:
    """Rows are acyclic and short-lived: while thousands are built, the collector's passes
    over every config object (each young-generation overflow) cost more than the rows."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()
