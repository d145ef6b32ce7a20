"""Who may call the REST API: the users file (Ganeti's format) and HTTP Basic.

The file has one user a line, ``NAME PASSWORD [OPTIONS]``: OPTIONS is ``read``, ``write`` or
``read,write`` (``write`` implies ``read``); PASSWORD is plain text, ``{cleartext}TEXT`` or
``{HA1}HEX``, the MD5 of ``NAME:Ganeti Remote API:PASSWORD`` (so the file need not hold the
password itself). Blank lines and ``#`` comments are skipped. The file is read again when it
changes (its inode, size or mtime), checked at each request: a stat costs microseconds.

Unlike Ganeti, every request needs a user unless the daemon runs with anonymous reads
allowed; then a request without credentials may read (never write). Credentials that are
sent are always checked, anonymous reads or not.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
import os
from dataclasses import dataclass

from cardume.rapi.base import Access, RapiError

log = logging.getLogger("cardume.rapi.auth")

REALM = "Ganeti Remote API"
CHALLENGE = {"WWW-Authenticate": f'Basic realm="{REALM}"'}
ACCESS_OPTIONS = ("read", "write")


@dataclass(frozen=True)
class User:
    name: str
    password: str  # as written in the file, scheme prefix included
    options: frozenset[str]

    def may(self, access: Access) -> bool:
        """Whether this user has the access a route needs (None: any known user)."""
        if access is None:
            return True
        if access == "read":
            return bool(self.options & {"read", "write"})
        return "write" in self.options

    def password_matches(self, given: str) -> bool:
        return check_password(self.name, self.password, given)


def check_password(name: str, stored: str, given: str) -> bool:
    """Compare ``given`` with the file's ``stored`` password, in constant time."""
    if not stored.startswith("{"):
        scheme, expected = "{CLEARTEXT}", stored
    else:
        end = stored.find("}", 1)
        if end <= 1:
            return False
        scheme, expected = stored[:end + 1].upper(), stored[end + 1:]
    if scheme == "{CLEARTEXT}":
        return hmac.compare_digest(given.encode(), expected.encode())
    if scheme == "{HA1}":
        digest = hashlib.md5(f"{name}:{REALM}:{given}".encode(), usedforsecurity=False)
        return hmac.compare_digest(digest.hexdigest().encode(), expected.lower().encode())
    return False


def parse_users(text: str, source: str = "users file") -> dict[str, User]:
    """The users of a users file's text. A bad line is logged (by number, never its
    password) and skipped: the other users keep working."""
    users: dict[str, User] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split(None, 2)
        if len(parts) < 2:
            log.warning("%s line %d: expected 'USER PASSWORD [read|write]'; line skipped",
                        source, number)
            continue
        name, password = parts[0], parts[1]
        options = frozenset(o.strip() for o in (parts[2] if len(parts) > 2 else "").split(",")
                            if o.strip())
        unknown = sorted(options - set(ACCESS_OPTIONS))
        if unknown:
            log.warning("%s line %d: user %s: unknown option(s) %s (expected read, write); "
                        "ignored", source, number, name, ",".join(unknown))
        if password.startswith("{"):
            end = password.find("}", 1)
            scheme = password[:end + 1].upper() if end > 1 else ""
            if scheme not in ("{CLEARTEXT}", "{HA1}"):
                log.warning("%s line %d: user %s: unknown password scheme (expected "
                            "{cleartext} or {HA1}); this user cannot log in", source, number,
                            name)
        users[name] = User(name, password, options & frozenset(ACCESS_OPTIONS))
    return users


class UsersFile:
    """The users file at ``path``, read again whenever it changes."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._stamp: tuple[int, int, int] | None = None
        self._users: dict[str, User] = {}

    def users(self) -> dict[str, User]:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            if self._stamp is not None or self._users:
                log.warning("users file %s is gone: no user can log in", self.path)
            self._stamp, self._users = None, {}
            return self._users
        except OSError as err:
            log.warning("cannot read users file %s: %s; keeping the users read before",
                        self.path, err.strerror)
            return self._users
        stamp = (st.st_ino, st.st_size, st.st_mtime_ns)
        if stamp != self._stamp:
            try:
                with open(self.path, encoding="utf-8", errors="replace") as handle:
                    text = handle.read()
            except OSError as err:
                log.warning("cannot read users file %s: %s; keeping the users read before",
                            self.path, err.strerror)
                return self._users
            self._users = parse_users(text, self.path)
            self._stamp = stamp
            log.info("read %d user(s) from %s", len(self._users), self.path)
        return self._users


def basic_credentials(header: str) -> tuple[str, str]:
    """``(user, password)`` of an ``Authorization: Basic ...`` header, or a 401."""
    scheme, _, encoded = header.strip().partition(" ")
    if scheme.lower() != "basic":
        raise RapiError(401, f"authentication scheme {scheme[:20]!r} is not supported "
                             "(expected Basic)", CHALLENGE)
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        raise RapiError(401, "malformed Basic credentials (expected base64 of "
                             "'user:password')", CHALLENGE) from None
    user, sep, password = decoded.partition(":")
    if not sep:
        raise RapiError(401, "malformed Basic credentials (expected base64 of "
                             "'user:password')", CHALLENGE)
    return user, password


# A password compared for unknown users too, so a reply's timing does not tell which
# user names exist.
_NOBODY = User("", "{HA1}" + "0" * 32, frozenset())


def authorize(users: dict[str, User], header: str | None, access: Access, method: str,
              anonymous_reads: bool) -> str | None:
    """The user a request runs as (None: anonymous), or a 401/403 ``RapiError``.

    Without credentials only reads go through, and only when ``anonymous_reads``: a route
    needing nothing (None) or ``read``, with GET."""
    if header is None:
        if anonymous_reads and method == "GET" and access in (None, "read"):
            return None
        raise RapiError(401, "this request needs a user name and password (HTTP Basic)",
                        CHALLENGE)
    name, password = basic_credentials(header)
    user = users.get(name)
    ok = (user or _NOBODY).password_matches(password)
    if user is None or not ok:
        raise RapiError(401, "wrong user name or password", CHALLENGE)
    if not user.may(access):
        raise RapiError(403, f"user {name} lacks the {access} access this request needs")
    return name
