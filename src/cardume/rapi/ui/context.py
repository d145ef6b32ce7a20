"""What a console page handler gets (``Ctx``) and gives back (a ``Response``), and the error
a handler raises to answer with a page (``UiError``)."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from cardume.rapi.base import MasterLink
from cardume.rapi.http import Request, Response
from cardume.rapi.ui import html
from cardume.rapi.ui.forms import field as form_field
from cardume.rapi.ui.jobindex import JobIndex
from cardume.rapi.ui.session import Session

HTML = "text/html; charset=utf-8"
REASON_SOURCE = "cardume:ui"


class UiError(Exception):
    """Answer with an error page: ``status`` and the one line saying what was wrong."""

    def __init__(self, status: int, message: str, title: str = "",
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.title = title
        self.headers = headers or {}


@dataclass
class Ctx:
    request: Request
    path: str
    args: dict[str, list[str]]
    params: dict[str, str]
    master: MasterLink
    cluster: str = ""
    session: Session | None = None
    access: str = ""                 # "read" or "write" once logged in
    form: dict[str, list[str]] = field(default_factory=dict)
    jobs: JobIndex | None = None     # recent jobs, read without loading the whole queue

    @property
    def user(self) -> str | None:
        return self.session.user if self.session else None

    @property
    def csrf(self) -> str:
        return self.session.csrf if self.session else ""

    def arg(self, name: str, default: str = "") -> str:
        values = self.args.get(name)
        return values[-1].strip() if values else default

    def field(self, name: str, default: str = "") -> str:
        return form_field(self.form, name, default)

    def page(self, title: str, body: html.Markup, status: int = 200, current: str = "",
             head: html.Markup = html.EMPTY, flash: str = "") -> Response:
        text = html.layout(title, body, user=self.user, access=self.access, csrf=self.csrf,
                           cluster=self.cluster, flash=flash, head=head, current=current)
        return Response(status, text.encode(), content_type=HTML)

    def reason(self) -> list[list[Any]]:
        """The reason trail of what this request submits: who, through the console."""
        return [[REASON_SOURCE, f"web console, user {self.user}", time.time_ns()]]


def redirect(location: str, status: int = 303, headers: dict[str, str] | None = None
             ) -> Response:
    return Response(status, b"", {"Location": location, **(headers or {})}, content_type=HTML)


Handler = Callable[[Ctx], Awaitable[Response]]
