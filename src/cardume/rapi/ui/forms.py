"""Form bodies (application/x-www-form-urlencoded) of the console's POSTs.

Only the console reads them: the REST API's JSON bodies keep their own strict parser
(rapi/http.py), which still refuses any other content type with a 415.
"""

from __future__ import annotations

from urllib.parse import parse_qs

FORM_TYPE = "application/x-www-form-urlencoded"
MAX_FIELDS = 200


class FormError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def parse_form(body: bytes, content_type: str | None) -> dict[str, list[str]]:
    """The fields of a form body; a FormError (415, 400) naming what is wrong."""
    if not body.strip():
        return {}
    ctype = (content_type or "").split(";", 1)[0].strip().lower()
    if ctype != FORM_TYPE:
        raise FormError(415, f"form body of type {(content_type or '(none)')[:60]!r} is not "
                             f"accepted (expected {FORM_TYPE})")
    try:
        text = body.decode("ascii")  # urlencoded: any other byte is percent-encoded
        return parse_qs(text, keep_blank_values=True, strict_parsing=True, encoding="utf-8",
                        errors="strict", max_num_fields=MAX_FIELDS)
    except UnicodeDecodeError:
        raise FormError(400, "form body is not URL-encoded (a raw non-ASCII byte)") from None
    except ValueError as err:
        raise FormError(400, f"malformed form body: {err}") from None


def field(form: dict[str, list[str]], name: str, default: str = "") -> str:
    """A form field's last value, stripped."""
    values = form.get(name)
    return values[-1].strip() if values else default
