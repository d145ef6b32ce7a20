"""The login form, logging in and out."""

from __future__ import annotations

from cardume.rapi import auth
from cardume.rapi.http import Response
from cardume.rapi.ui import html, session
from cardume.rapi.ui.context import Ctx, redirect

_FORM = """<form method="post" action="/ui/login" class="login">
<input type="hidden" name="next" value="$next">
<label>User <input name="user" autocomplete="username" required autofocus value="$user">
</label>
<label>Password <input name="password" type="password" autocomplete="current-password"
required></label>
<button type="submit">Log in</button>
</form>"""

# compared for unknown user names too, so the reply's timing does not tell which exist
_NOBODY = "{HA1}" + "0" * 32


def safe_next(target: str) -> str:
    """Where to go after logging in: a console path only (never another site)."""
    if target.startswith("/ui/") and not target.startswith("//") and "\\" not in target \
            and "\r" not in target and "\n" not in target:
        return target
    return "/ui/"


def login_page(ctx: Ctx, status: int = 200, message: str = "", user: str = "",
               nxt: str = "/ui/") -> Response:
    body = html.render(_FORM, next=safe_next(nxt), user=user)
    return ctx.page("Log in", body, status=status, flash=message)


async def show(ctx: Ctx) -> Response:
    return login_page(ctx, nxt=ctx.arg("next", "/ui/"))


def check(users: auth.UsersFile, name: str, password: str) -> auth.User | None:
    """The user whose name and password these are (None: wrong), compared in constant
    time."""
    user = users.users().get(name)
    stored = user.password if user else _NOBODY
    ok = auth.check_password(name, stored, password)
    return user if ok and user is not None else None


async def do_login(ctx: Ctx, users: auth.UsersFile, sessions: session.Sessions,
                   throttle: session.LoginThrottle) -> Response:
    name, password, nxt = ctx.field("user"), ctx.field("password"), ctx.field("next")
    wait = throttle.blocked(name)
    if wait:
        response = login_page(ctx, 429, f"Too many wrong passwords for {name}: try again in "
                                        f"{int(wait) + 1} s.", name, nxt)
        response.headers["Retry-After"] = str(int(wait) + 1)
        return response
    user = check(users, name, password) if name else None
    if user is None:
        throttle.failed(name)
        return login_page(ctx, 401, "Wrong user name or password.", name, nxt)
    throttle.succeeded(name)
    if not user.may("read"):
        return login_page(ctx, 403, f"User {name} has neither read nor write access to "
                                    "this cluster.", name, nxt)
    new = sessions.create(user.name)
    return redirect(safe_next(nxt), headers={"Set-Cookie": session.set_cookie(new)})


async def do_logout(ctx: Ctx, sessions: session.Sessions) -> Response:
    if ctx.session is not None:
        sessions.drop(ctx.session.id)
    return redirect("/ui/login", headers={"Set-Cookie": session.clear_cookie()})
