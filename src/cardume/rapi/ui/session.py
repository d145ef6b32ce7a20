"""Logins of the console: server-side sessions, their cookie, CSRF tokens, origin checks.

A session is a random id (the cookie's value, HttpOnly, Secure, SameSite=Strict, path /ui/)
mapped in this process to the user, a CSRF token and two deadlines: ``idle`` seconds after
its last request, ``lifetime`` after the login. Nothing about it is in the cookie but the
id. The user's access is read again from the users file at each request, so a user removed
or made read-only loses it at once. Every state-changing request must carry the session's
token in its form (``csrf``) and come from this origin (Origin, else Referer).
"""

from __future__ import annotations

import hmac
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

COOKIE = "cardume_ui"
IDLE = 30 * 60.0
LIFETIME = 12 * 3600.0
MAX_SESSIONS = 10000


@dataclass
class Session:
    id: str
    user: str
    csrf: str
    created: float
    seen: float


class Sessions:
    """The live sessions of this daemon (a restart, or a master failover, logs every user
    out: nothing about a session is written anywhere)."""

    def __init__(self, idle: float = IDLE, lifetime: float = LIFETIME,
                 clock: Callable[[], float] = time.monotonic,
                 max_sessions: int = MAX_SESSIONS) -> None:
        self.idle = idle
        self.lifetime = lifetime
        self.clock = clock
        self.max_sessions = max_sessions
        self._by_id: dict[str, Session] = {}

    def create(self, user: str) -> Session:
        now = self.clock()
        if len(self._by_id) >= self.max_sessions:
            self.expire()
            while len(self._by_id) >= self.max_sessions:  # the oldest go first
                del self._by_id[next(iter(self._by_id))]
        session = Session(secrets.token_urlsafe(32), user, secrets.token_urlsafe(32), now, now)
        self._by_id[session.id] = session
        return session

    def get(self, sid: str | None) -> tuple[Session | None, bool]:
        """The live session ``sid`` names (its idle deadline renewed), and whether a
        session was named that is no longer valid (expired, logged out, unknown)."""
        if not sid:
            return None, False
        session = self._by_id.get(sid)
        if session is None:
            return None, True
        now = self.clock()
        if now - session.seen > self.idle or now - session.created > self.lifetime:
            del self._by_id[sid]
            return None, True
        session.seen = now
        return session, False

    def drop(self, sid: str) -> None:
        self._by_id.pop(sid, None)

    def expire(self) -> None:
        now = self.clock()
        for sid, s in list(self._by_id.items()):
            if now - s.seen > self.idle or now - s.created > self.lifetime:
                del self._by_id[sid]

    def __len__(self) -> int:
        return len(self._by_id)


class LoginThrottle:
    """Slows password guessing: after ``limit`` wrong passwords for one user name within
    ``window`` seconds, that name's logins are refused until the oldest failure ages out
    (whatever the password, so a guess cannot tell it was right)."""

    def __init__(self, limit: int = 5, window: float = 300.0,
                 clock: Callable[[], float] = time.monotonic, max_names: int = 10000) -> None:
        self.limit = limit
        self.window = window
        self.clock = clock
        self.max_names = max_names
        self._failures: dict[str, list[float]] = {}

    def _recent(self, name: str) -> list[float]:
        now = self.clock()
        kept = [t for t in self._failures.get(name, []) if now - t < self.window]
        if kept:
            self._failures[name] = kept
        else:
            self._failures.pop(name, None)
        return kept

    def blocked(self, name: str) -> float:
        """Seconds until ``name`` may try again (0: now)."""
        recent = self._recent(name)
        if len(recent) < self.limit:
            return 0.0
        return max(0.0, recent[0] + self.window - self.clock())

    def failed(self, name: str) -> None:
        if len(self._failures) >= self.max_names and name not in self._failures:
            del self._failures[next(iter(self._failures))]
        self._failures.setdefault(name, []).append(self.clock())

    def succeeded(self, name: str) -> None:
        self._failures.pop(name, None)


def set_cookie(session: Session, lifetime: float = LIFETIME) -> str:
    return (f"{COOKIE}={session.id}; Path=/ui/; Max-Age={int(lifetime)}; HttpOnly; Secure; "
            "SameSite=Strict")


def clear_cookie() -> str:
    return f"{COOKIE}=; Path=/ui/; Max-Age=0; HttpOnly; Secure; SameSite=Strict"


def cookie_value(header: str | None, name: str = COOKIE) -> str | None:
    """The value of cookie ``name`` in a Cookie header (the first one given)."""
    for part in (header or "").split(";"):
        key, sep, value = part.strip().partition("=")
        if sep and key == name:
            return value.strip()
    return None


def csrf_ok(session: Session, given: str | None) -> bool:
    return bool(given) and hmac.compare_digest(session.csrf.encode(), (given or "").encode())


def same_origin(headers: dict[str, str]) -> bool:
    """Whether a state-changing request comes from a page of this server: its Origin (or,
    without one, its Referer) must be https://HOST where HOST is the request's Host. A
    request with neither is refused (every browser sends Origin with a POST)."""
    host = headers.get("host", "").strip().lower()
    if not host:
        return False
    origin = headers.get("origin")
    if origin is not None:
        return origin.strip().lower() == f"https://{host}"
    referer = headers.get("referer")
    if referer is None:
        return False
    parts = urlsplit(referer.strip())
    return parts.scheme.lower() == "https" and parts.netloc.lower() == host
