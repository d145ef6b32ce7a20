"""What the HTTP server and the resources share: a call, a route, the error reply.

A resource handler is ``async def handler(call: Call) -> Any``: what it returns is the JSON
reply's body (a mutation returns the job id). It raises ``RapiError`` (or any
``errors.CardumeError``, mapped by its ``http_status``) to answer with Ganeti's error body
``{"code": STATUS, "message": WHAT_WENT_WRONG, "explain": THE_STATUS_EXPLAINED}``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any, Literal, Protocol

Access = Literal["read", "write"] | None
"""What a route needs of the user: nothing (anonymous), ``read`` or ``write``."""


class RapiError(Exception):
    """An HTTP error reply. ``message`` is the one line naming the bad value and what was
    expected (Ganeti's clients print it); ``explain`` is the status's standard sentence."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None
                 ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        status = HTTPStatus(self.status)
        return {"code": self.status, "message": self.message,
                "explain": status.description or status.phrase}


class EncodedJson(bytes):
    """A reply body that is JSON text already: the HTTP side sends it as it is."""


@dataclass(frozen=True)
class PlainText:
    """A reply body that is not JSON (the metrics page), with its content type."""

    body: bytes
    content_type: str = "text/plain; charset=utf-8"


class MasterLink(Protocol):
    """The master's socket as the resources use it (the one seam tests may replace)."""

    async def call(self, method: str, *args: Any) -> Any:
        """One LUXI request (``SubmitJob``, ``Query``, ``QueryJobs`` ...); its result, or
        the master's error raised as ``errors.CardumeError``."""
        ...

    async def call_raw(self, method: str, *args: Any) -> bytes:
        """As ``call``, the result as JSON text, not parsed (``QueryBulk``)."""
        ...


@dataclass
class Call:
    """One request, as a handler sees it."""

    method: str                       # GET, PUT, POST or DELETE
    path: str                         # without the query string
    args: dict[str, list[str]]        # query arguments, as parse_qs gives them
    body: Any                         # the parsed JSON body, or None when there was none
    params: dict[str, str]            # the path's named parts (e.g. instance_name)
    master: MasterLink
    user: str | None = None           # the authenticated user, None when anonymous
    headers: dict[str, str] = field(default_factory=dict)  # lower-case names

    def flag(self, name: str, default: bool = False) -> bool:
        """A 0/1 query argument (``bulk``, ``dry-run``, ``force`` ...)."""
        values = self.args.get(name)
        if not values:
            return default
        value = values[-1]
        if value in ("1", "true", "True"):
            return True
        if value in ("0", "false", "False", ""):
            return False
        raise RapiError(400, f"query argument '{name}' must be 0 or 1, not {value!r}")

    def arg(self, name: str, default: str | None = None) -> str | None:
        values = self.args.get(name)
        return values[-1] if values else default


Handler = Callable[[Call], Awaitable[Any]]


@dataclass(frozen=True)
class Route:
    """One method of one resource."""

    handler: Handler
    access: Access
    params: dict[str, str]  # the path's named parts, filled in by the lookup
