"""The path table of the Remote API: every resource, its methods and the access each needs.

``lookup(method, path)`` is all the HTTP side asks: the route, or a 404 (unknown path) or
405 (known path, other methods; the ``Allow`` header lists them).
"""

from __future__ import annotations

import re
from typing import Any

from cardume.rapi.base import Access, Call, Handler, RapiError, Route

_TABLE: list[tuple[re.Pattern[str], dict[str, tuple[Handler, Access]]]] = []


def resource(pattern: str, **methods: tuple[Handler, Access]) -> None:
    """Add a resource: ``pattern`` names its parts as ``{instance_name}``; each keyword is a
    method (GET, PUT, POST, DELETE) with its handler and the access it needs."""
    regex = re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", pattern)
    _TABLE.append((re.compile(f"^{regex}$"), methods))


def lookup(method: str, path: str) -> Route:
    for regex, methods in _TABLE:
        match = regex.match(path)
        if match is None:
            continue
        entry = methods.get(method)
        if entry is None:
            allowed = ", ".join(sorted(methods))
            raise RapiError(405, f"method {method} is not supported on {path} "
                                 f"(allowed: {allowed})", headers={"Allow": allowed})
        handler, access = entry
        return Route(handler, access, match.groupdict())
    raise RapiError(404, f"no resource {path}")


async def _root(call: Call) -> Any:
    return None


async def _version(call: Call) -> Any:
    return 2


resource("/", GET=(_root, None))
resource("/version", GET=(_version, None))
