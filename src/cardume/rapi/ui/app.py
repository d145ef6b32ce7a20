"""The console's request handling: its page table, who may do what, the checks every
state-changing request passes, its static files, and its error pages.

Every page under /ui/ needs a logged-in user but the login form and the static files. A
POST must come from this origin (Origin/Referer), carry the session's CSRF token, and (but
logging out) come from a user with write access; anything refused is an error page with
its status and nothing is submitted. ``WebApp`` puts the console beside the REST API on
the daemon's port: /ui/... goes to the console, everything else to the REST API as before.
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
from http import HTTPStatus
from pathlib import Path
from typing import Any

from cardume import errors
from cardume.paths import NodePaths
from cardume.rapi import auth
from cardume.rapi.base import MasterLink, RapiError
from cardume.rapi.http import App, Request, Response, split_target
from cardume.rapi.ui import (
    html,
    pages_console,
    pages_create,
    pages_dashboard,
    pages_instances,
    pages_jobs,
    pages_login,
    session,
)
from cardume.rapi.ui.console_relay import Consoles
from cardume.rapi.ui.context import HTML, Ctx, Handler, UiError, redirect
from cardume.rapi.ui.forms import FormError, parse_form
from cardume.rapi.ui.jobindex import JobIndex

log = logging.getLogger("cardume.rapi.ui")

PREFIX = "/ui"
STATIC_DIR = Path(__file__).parent / "static"
STATIC_TYPES = {".css": "text/css; charset=utf-8", ".js": "text/javascript; charset=utf-8",
                ".mjs": "text/javascript; charset=utf-8"}
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; "
                               "img-src 'self'; connect-src 'self'; form-action 'self'; "
                               "frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
}
_STATIC_NAME = re.compile(r"^[a-z0-9_-]+\.(css|js)$")
# the vendored libraries (packaging/vendor_js.py): every path segment starts with a letter
# or digit, so none is "." or ".."
_VENDOR_NAME = re.compile(r"^vendor(/[A-Za-z0-9][A-Za-z0-9_.-]*)+\.(css|js|mjs)$")

Public, Read, Write = "public", "read", "write"


class UiApp:
    def __init__(self, master: MasterLink, users: auth.UsersFile,
                 sessions: session.Sessions | None = None,
                 paths: NodePaths | None = None) -> None:
        self.master = master
        self.users = users
        self.sessions = sessions or session.Sessions()
        self.throttle = session.LoginThrottle()
        self.jobs = JobIndex(master)
        self.cluster = ""
        self.consoles = Consoles(paths)  # serial and VNC consoles (pages_console)
        self._routes: list[tuple[str, re.Pattern[str], Handler, str]] = []
        self._static: dict[str, tuple[bytes, str]] = {}
        self._table()

    def route(self, method: str, pattern: str, handler: Handler, need: str) -> None:
        regex = re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", pattern)
        self._routes.append((method, re.compile(f"^{regex}$"), handler, need))

    def _table(self) -> None:
        r = self.route

        async def login(ctx: Ctx) -> Response:
            return await pages_login.do_login(ctx, self.users, self.sessions, self.throttle)

        async def logout(ctx: Ctx) -> Response:
            return await pages_login.do_logout(ctx, self.sessions)

        r("GET", "/ui/login", pages_login.show, Public)
        r("POST", "/ui/login", login, Public)
        r("POST", "/ui/logout", logout, Read)
        r("GET", "/ui/", pages_dashboard.dashboard, Read)
        r("POST", "/ui/cluster/{what}", pages_dashboard.run_check, Write)
        r("GET", "/ui/instances", pages_instances.listing, Read)
        r("GET", "/ui/instances/{name}", pages_instances.instance, Read)
        pages_console.routes(self)  # before {action}, which would take "console"
        r("GET", "/ui/instances/{name}/{action}", pages_instances.confirm, Write)
        r("POST", "/ui/instances/{name}/{action}", pages_instances.act, Write)
        r("GET", "/ui/create", pages_create.form, Write)
        r("POST", "/ui/create", pages_create.submit, Write)
        r("GET", "/ui/jobs", pages_jobs.listing, Read)
        r("GET", "/ui/jobs/{job_id}", pages_jobs.job, Read)
        r("GET", "/ui/jobs/{job_id}/events", pages_jobs.events, Read)
        r("POST", "/ui/jobs/{job_id}/cancel", pages_jobs.cancel, Write)

    # --- one request ----------------------------------------------------------------------

    async def __call__(self, request: Request) -> Response:
        started = time.perf_counter()
        ctx = Ctx(request, "", {}, {}, self.master, self.cluster, jobs=self.jobs)
        try:
            ctx.path, ctx.args = split_target(request.target)
            if ctx.path == PREFIX:
                response = redirect("/ui/", 301)
            elif ctx.path.startswith("/ui/static/"):
                response = self._serve_static(request, ctx.path[len("/ui/static/"):])
            else:
                response = await self._page(ctx)
        except UiError as err:
            response = error_page(ctx, err.status, err.message, err.title)
            response.headers.update(err.headers)
        except RapiError as err:
            response = error_page(ctx, err.status, err.message)
        except errors.CardumeError as err:
            status = err.http_status if err.http_status in HTTPStatus._value2member_map_ \
                else 500
            response = error_page(ctx, status, str(err))
        except Exception as err:
            log.exception("%s %s failed", request.method, request.target.partition("?")[0])
            response = error_page(ctx, 500, f"internal error ({type(err).__name__}); see the "
                                            "REST daemon's log")
        if response.content_type == HTML:
            response.headers.setdefault("Cache-Control", "no-store")
            for key, value in SECURITY_HEADERS.items():
                response.headers.setdefault(key, value)
        response.user = ctx.user
        # how long the page took to make (bench/ui.py reads it; browsers show it)
        response.headers["Server-Timing"] = \
            f"app;dur={(time.perf_counter() - started) * 1000:.1f}"
        return response

    def _lookup(self, method: str, path: str) -> tuple[Handler, str, dict[str, str]]:
        allowed = []
        for m, regex, handler, need in self._routes:
            match = regex.match(path)
            if match is None:
                continue
            if m == method:
                return handler, need, match.groupdict()
            allowed.append(m)
        if allowed:
            methods = ", ".join(sorted(set(allowed)))
            raise UiError(405, f"{method} is not supported on {path} (allowed: {methods})",
                          headers={"Allow": methods})
        raise UiError(404, f"there is no page {path}", "Not found")

    async def _page(self, ctx: Ctx) -> Response:
        request = ctx.request
        handler, need, ctx.params = self._lookup(request.method, ctx.path)
        sid = session.cookie_value(request.headers.get("cookie"))
        found, stale = self.sessions.get(sid)
        if found is not None:
            user = self.users.users().get(found.user)
            if user is None or not user.may("read"):  # removed from the users file since
                self.sessions.drop(found.id)
                found, stale = None, True
            else:
                ctx.session = found
                ctx.access = "write" if user.may("write") else "read"
        if self.cluster == "" and found is not None:
            await self._learn_cluster_name()
            ctx.cluster = self.cluster
        if need != Public and ctx.session is None:
            if stale:
                raise UiError(401, "Your session has expired or ended: log in again.",
                              "Session expired")
            if request.method == "GET" and "upgrade" not in request.headers:
                return redirect(f"/ui/login?next={_quote(ctx.path)}")
            raise UiError(401, "You are not logged in: log in first.", "Not logged in")
        if request.method == "POST":
            try:
                ctx.form = parse_form(request.body, request.headers.get("content-type"))
            except FormError as err:
                raise UiError(err.status, err.message) from None
            if not session.same_origin(request.headers):
                raise UiError(403, "This request did not come from this console's pages "
                                   "(its Origin or Referer is missing or another site's); "
                                   "nothing was done.", "Refused")
            if need != Public:
                assert ctx.session is not None
                if not session.csrf_ok(ctx.session, ctx.field("csrf")):
                    raise UiError(403, "The form's security token is missing or wrong "
                                       "(reload the page and try again); nothing was done.",
                                  "Refused")
        if need == Write and ctx.access != "write":
            raise UiError(403, f"User {ctx.user} may look but not act: this needs write "
                               "access; nothing was done.", "Not allowed")
        return await handler(ctx)

    async def _learn_cluster_name(self) -> None:
        try:
            values = await self.master.call("QueryConfigValues", ["cluster_name"])
            self.cluster = str(values[0] or "")
        except errors.CardumeError:
            pass

    def _serve_static(self, request: Request, name: str) -> Response:
        if request.method not in ("GET", "HEAD"):
            raise UiError(405, f"{request.method} is not supported on static files")
        if not _STATIC_NAME.match(name) and not _VENDOR_NAME.match(name):
            raise UiError(404, f"there is no static file {name}", "Not found")
        if name not in self._static:
            try:
                data = (STATIC_DIR / name).read_bytes()
            except OSError:
                raise UiError(404, f"there is no static file {name}", "Not found") from None
            self._static[name] = (data, '"' + hashlib.sha256(data).hexdigest()[:32] + '"')
        data, etag = self._static[name]
        headers = {"Cache-Control": "public, max-age=300", "ETag": etag,
                   "X-Content-Type-Options": "nosniff"}
        ctype = STATIC_TYPES[Path(name).suffix]
        if request.headers.get("if-none-match") == etag:
            return Response(304, b"", headers, content_type=ctype)
        return Response(200, data, headers, content_type=ctype)


def _quote(path: str) -> str:
    from urllib.parse import quote
    return quote(path, safe="/")


_ERROR = """<div class="error-page"><p class="error">$message</p>
<p><a href="$back">$back_text</a></p></div>"""


def error_page(ctx: Ctx, status: int, message: str, title: str = "") -> Response:
    """A page saying what went wrong, with the status it deserves."""
    phrase = HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else "Error"
    if status == 401:
        back, back_text = f"/ui/login?next={_quote(ctx.path or '/ui/')}", "Log in"
    else:
        back, back_text = "/ui/", "Back to the dashboard"
    body = html.render(_ERROR, message=message, back=back, back_text=back_text)
    headers: dict[str, Any] = {}
    if status == 401:
        headers["Set-Cookie"] = session.clear_cookie()
        ctx.session = None
    response = ctx.page(title or phrase, body, status=status)
    response.headers.update(headers)
    return response


class WebApp:
    """The daemon's one app: the console under /ui, the REST API everywhere else."""

    def __init__(self, rapi: App, ui: UiApp) -> None:
        self.rapi = rapi
        self.ui = ui

    async def __call__(self, request: Request) -> Response:
        target = request.target
        if target == PREFIX or target.startswith((PREFIX + "/", PREFIX + "?")):
            return await self.ui(request)
        return await self.rapi(request)
