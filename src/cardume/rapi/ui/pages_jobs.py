"""Jobs: the list, one job's page with its log, the log streamed live while the job runs
(server-sent events; without JavaScript the page reloads itself), and cancelling."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

from cardume import constants
from cardume.rapi.http import Response
from cardume.rapi.ui import data, html
from cardume.rapi.ui.context import Ctx, UiError, redirect

JOB_FIELDS = ["id", "status", "summary", "received_ts", "start_ts", "end_ts", "oplog",
              "opresult", "opstatus"]
PER_PAGE = 100
WAIT = 10.0            # one WaitForJobChange; a keep-alive comment goes out after each
STREAM_LIMIT = 3600.0  # a stream ends after this long (the browser reconnects)


def _when(stamp: Any) -> str:
    if isinstance(stamp, list) and stamp:
        stamp = stamp[0]
    if not isinstance(stamp, int | float):
        return ""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(stamp))


def _job_id(ctx: Ctx) -> int:
    text = ctx.params["job_id"]
    if not (text.isascii() and text.isdigit()) or len(text) > 18:
        raise UiError(404, f"invalid job id {text!r}: expected a number", "Unknown job")
    return int(text)


async def _job(ctx: Ctx, job_id: int, fields: list[str]) -> dict[str, Any]:
    found = await data.rows(ctx.master, "job", fields, [str(job_id)])
    if not found:
        raise UiError(404, f"job {job_id} not found", "Unknown job")
    return found[0]


async def listing(ctx: Ctx) -> Response:
    assert ctx.jobs is not None
    text = ctx.arg("page", "1")
    if not text.isdigit() or not 1 <= int(text) <= 10**9:
        raise UiError(400, f"page must be a number from 1, not {text!r}")
    top = await ctx.jobs.newest()
    pages = max(1, (top + PER_PAGE - 1) // PER_PAGE)
    page = min(int(text), pages)
    jobs = await ctx.jobs.page(top - (page - 1) * PER_PAGE, PER_PAGE)
    rows = [[html.link(f"/ui/jobs/{j['id']}", j["id"]),
             html.render('<span class="status $s">$s</span>', s=j["status"]),
             ", ".join(j["summary"] or []), _when(j["received_ts"]), _when(j["end_ts"])]
            for j in jobs]
    pager = html.render('<p class="pager">Newest first, job ids 1 to $n; page $page of '
                        '$pages $prev $next</p>',
                        n=top, page=page, pages=pages,
                        prev=html.link(f"/ui/jobs?page={page - 1}", "« newer")
                        if page > 1 else "",
                        next=html.link(f"/ui/jobs?page={page + 1}", "older »")
                        if page < pages else "")
    body = html.render("$pager$table", pager=pager, table=html.table(
        ["Job", "Status", "Summary", "Received", "Ended"], rows, "jobs"))
    return ctx.page("Jobs", body, current="/ui/jobs")


def _result_text(job: dict[str, Any]) -> str:
    results = job["opresult"]
    if not isinstance(results, list):
        return ""
    parts = []
    for result in results:
        if isinstance(result, dict) and "message" in result:
            parts.append(f"{result.get('type', 'error')}: {result['message']}")
        elif result is not None:
            parts.append(json.dumps(result)[:2000])
    return "\n".join(parts)


async def job(ctx: Ctx) -> Response:
    job_id = _job_id(ctx)
    row = await _job(ctx, job_id, JOB_FIELDS)
    lines = data.log_lines(row["oplog"])
    running = row["status"] not in constants.JOBS_FINALIZED
    log_text = "\n".join(f"{_when(stamp)} {message}" for _, stamp, _, message in lines)
    cancel = html.Markup("")
    if running and ctx.access == "write":
        cancel = html.post_button(f"/ui/jobs/{job_id}/cancel", "Cancel job", ctx.csrf,
                                  "danger")
    head = html.Markup('<noscript><meta http-equiv="refresh" content="3"></noscript>') \
        if running else html.Markup("")
    body = html.render(
        '<p>Status: <strong id="job-status" class="status $status">$status</strong> $cancel'
        '</p><p>$summary</p><p>Received $received, started $started, ended $ended</p>'
        '<h2>Log</h2><pre id="job-log" class="log" data-job="$id" data-serial="$serial" '
        'data-live="$live">$log</pre><h2>Result</h2><pre class="result">$result</pre>',
        status=row["status"], cancel=cancel, summary=", ".join(row["summary"] or []),
        received=_when(row["received_ts"]) or "-", started=_when(row["start_ts"]) or "-",
        ended=_when(row["end_ts"]) or "-", id=job_id,
        serial=lines[-1][0] if lines else 0, live="1" if running else "0", log=log_text,
        result=_result_text(row))
    return ctx.page(f"Job {job_id}", body, current="/ui/jobs", head=head)


def sse(event: str, payload: Any, event_id: int | None = None) -> bytes:
    """One server-sent event (the payload as one line of JSON)."""
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {event}\ndata: {json.dumps(payload)}\n\n".encode()


async def events(ctx: Ctx) -> Response:
    """The job's log lines after ``Last-Event-ID`` (or ``?after=``) as they are written,
    each an ``log`` event; an ``end`` event with the final status closes the stream."""
    job_id = _job_id(ctx)
    await _job(ctx, job_id, ["id"])  # unknown: a 404 page, not an empty stream
    start = ctx.request.headers.get("last-event-id") or ctx.arg("after", "0")
    if not start.isdigit():
        raise UiError(400, f"invalid log position {start!r}: expected a number")
    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    return Response(200, b"", headers, content_type="text/event-stream; charset=utf-8",
                    stream=_stream(ctx, job_id, int(start)))


async def _stream(ctx: Ctx, job_id: int, serial: int) -> AsyncIterator[bytes]:
    deadline = asyncio.get_running_loop().time() + STREAM_LIMIT
    yield b"retry: 3000\n\n"
    while asyncio.get_running_loop().time() < deadline:
        found = await data.rows(ctx.master, "job", ["status", "oplog"], [str(job_id)])
        if not found:
            yield sse("end", {"status": "gone"})
            return
        status = found[0]["status"]
        for number, stamp, kind, message in data.log_lines(found[0]["oplog"]):
            if number > serial:
                serial = number
                yield sse("log", {"serial": number, "time": _when(stamp), "type": kind,
                                  "message": message}, number)
        if status in constants.JOBS_FINALIZED:
            yield sse("end", {"status": status})
            return
        change = await ctx.master.call("WaitForJobChange", job_id, status, serial, WAIT)
        if change in (None, "nochange"):
            yield b": still running\n\n"


async def cancel(ctx: Ctx) -> Response:
    job_id = _job_id(ctx)
    await _job(ctx, job_id, ["id"])
    await ctx.master.call("CancelJob", job_id)
    return redirect(f"/ui/jobs/{job_id}")
