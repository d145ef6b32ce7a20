"""Console pages: an instance's serial console in xterm.js and its VNC display in noVNC,
each fed by a WebSocket relayed to the instance's primary node (console_relay.py).

Opening a console is an action (what is typed reaches the guest), so the pages and their
WebSockets need write access. The page issues a one-time ticket; its WebSocket carries it
in the URL with the session cookie, and must come from this origin (a WebSocket is a GET,
which the console's POST checks do not cover; browsers always send Origin with one).
"""

from __future__ import annotations

from typing import Any, Protocol
from urllib.parse import quote

from cardume.rapi import auth, websocket
from cardume.rapi.http import Response
from cardume.rapi.ui import data, html, session
from cardume.rapi.ui.console_relay import Consoles, Refused
from cardume.rapi.ui.context import Ctx, Handler, UiError


class UiApp(Protocol):
    """What the console's pages use of the app (app.UiApp)."""

    consoles: Consoles
    users: auth.UsersFile
    sessions: session.Sessions

    def route(self, method: str, pattern: str, handler: Handler, need: str) -> None: ...

FIELDS = ["name", "status", "oper_state", "pnode", "hypervisor", "hv/serial_console",
          "console"]
SEGMENT = {"serial": "console", "vnc": "vnc"}
TITLE = {"serial": "Serial console", "vnc": "VNC console"}
# xterm.js writes its measured cell sizes and theme into <style> elements it creates, which
# a strict style-src forbids; scripts stay 'self' only.
SERIAL_CSP = ("default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
              "img-src 'self'; connect-src 'self'; form-action 'self'; "
              "frame-ancestors 'none'; base-uri 'none'")
_CSS = '<link rel="stylesheet" href="/ui/static/console.css">'
_HEAD = {
    "serial": _CSS + '<link rel="stylesheet" href="/ui/static/vendor/xterm/css/xterm.css">'
                     '<script type="module" src="/ui/static/console-serial.js"></script>',
    "vnc": _CSS + '<script type="module" src="/ui/static/console-vnc.js"></script>',
}
_BODY = """<p class="console-bar"><span id="console-state">connecting…</span>
· on node $node · <a href="/ui/instances/$qname">back to $name</a></p>
<div id="console" class="console $kind" data-ws="$ws" data-instance="$name"></div>"""


def routes(app: UiApp) -> None:
    """The console's pages and sockets, in the app's table (before the instance actions,
    whose /ui/instances/NAME/ACTION would take /console)."""
    for kind, seg in SEGMENT.items():
        app.route("GET", f"/ui/instances/{{name}}/{seg}", _page_handler(app, kind), "write")
        app.route("GET", f"/ui/instances/{{name}}/{seg}/ws", _socket_handler(app, kind),
                  "write")


def _plausible(name: str) -> bool:
    return 0 < len(name) <= 255 and all(c.isalnum() or c in "-._" for c in name)


async def target(ctx: Ctx, kind: str) -> dict[str, Any]:
    """The instance whose console is asked for, if it has one to open now."""
    name = ctx.params["name"]
    found = await data.rows(ctx.master, "instance", FIELDS, [name]) if _plausible(name) \
        else []
    if not found:
        raise UiError(404, f"instance {name!r} not found", "Unknown instance")
    inst = found[0]
    name = inst["name"]
    if inst["hypervisor"] != "kvm":
        raise UiError(409, f"instance {name} runs under the {inst['hypervisor']} "
                           "hypervisor, which has no console to open", "No console")
    if not inst["oper_state"]:
        raise UiError(409, f"instance {name} is not running (status {inst['status']}): "
                           "start it first", "Not running")
    if kind == "serial" and inst["hv/serial_console"] is False:
        raise UiError(409, f"instance {name} has no serial console (hypervisor parameter "
                           "serial_console is off)", "No console")
    console = inst["console"]
    if kind == "vnc" and not (isinstance(console, dict) and console.get("kind") == "vnc"):
        raise UiError(409, f"instance {name} has no VNC display (set the hypervisor "
                           "parameter vnc_bind_address, e.g. 127.0.0.1, and restart it)",
                      "No VNC")
    return inst


def _page_handler(app: UiApp, kind: str) -> Any:
    async def page(ctx: Ctx) -> Response:
        inst = await target(ctx, kind)
        assert ctx.session is not None
        try:
            token = app.consoles.issue(ctx.session, inst["name"], kind, inst["pnode"])
        except Refused as err:
            raise UiError(err.status, err.message, "Too many consoles") from None
        qname = quote(inst["name"], safe="")
        ws = f"/ui/instances/{qname}/{SEGMENT[kind]}/ws?token={token}"
        body = html.render(_BODY, node=inst["pnode"], qname=qname, name=inst["name"],
                           kind=kind, ws=ws)
        response = ctx.page(f"{TITLE[kind]} of {inst['name']}", body,
                            current="/ui/instances", head=html.Markup(_HEAD[kind]))
        if kind == "serial":
            response.headers["Content-Security-Policy"] = SERIAL_CSP
        return response
    return page


def _socket_handler(app: UiApp, kind: str) -> Any:
    async def socket(ctx: Ctx) -> Response:
        request = ctx.request
        if not session.same_origin(request.headers):
            raise UiError(403, "This console connection did not come from this console's "
                               "pages (its Origin is missing or another site's).", "Refused")
        try:
            accept = websocket.handshake(request.method, request.version, request.headers,
                                         ("binary",))
        except websocket.HandshakeError as err:
            raise UiError(err.status, err.message) from None
        assert ctx.session is not None
        try:
            ticket = app.consoles.redeem(ctx.arg("token"), ctx.session, ctx.params["name"],
                                         kind)
        except Refused as err:
            raise UiError(err.status, err.message, "Refused") from None

        def may_write(user: str) -> bool:
            found = app.users.users().get(user)
            return found is not None and found.may("write")

        async def run(reader: Any, writer: Any, leftover: bytes) -> None:
            ws = websocket.WebSocket(reader, writer, leftover)
            await app.consoles.run(ticket, ws, app.sessions, may_write)

        return Response(101, b"", accept, content_type="", upgrade=run)
    return socket
