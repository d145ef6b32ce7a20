"""HTML for the console: escaping by default, the base layout, small pieces (bars, tables).

``Markup`` is text that is HTML already; everything else put into a template is escaped.
Templates are ``string.Template`` text (``$name``); :func:`render` escapes each value unless
it is ``Markup``, so an instance tag holding ``<script>`` shows as text.
"""

from __future__ import annotations

import html
from collections.abc import Iterable
from string import Template
from typing import Any


class Markup(str):
    """Text that is HTML already (built by :func:`render` or :func:`join`)."""

    __slots__ = ()


EMPTY = Markup("")


def esc(value: Any) -> Markup:
    """``value`` as HTML text: escaped, unless it is Markup already."""
    if isinstance(value, Markup):
        return value
    return Markup(html.escape("" if value is None else str(value), quote=True))


def render(template: str, **values: Any) -> Markup:
    """``template`` with every ``$name`` replaced by its value, escaped."""
    return Markup(Template(template).substitute({k: esc(v) for k, v in values.items()}))


def join(parts: Iterable[Any], sep: str = "") -> Markup:
    return Markup(esc(sep).join(esc(p) for p in parts))


def attrs_selected(flag: bool, word: str = "selected") -> Markup:
    return Markup(f" {word}") if flag else Markup("")


def mib(value: Any) -> str:
    """A size in MiB as people read it (1.5G, 512M); '?' when unknown."""
    if not isinstance(value, int | float) or isinstance(value, bool):
        return "?"
    if value >= 1024 * 1024:
        return f"{value / 1024 / 1024:.1f}T"
    if value >= 1024:
        return f"{value / 1024:.1f}G"
    return f"{int(value)}M"


def bar(label: str, used: Any, total: Any, text: str) -> Markup:
    """A used-against-total bar (a ``<meter>``: no inline style, which the page's content
    security policy forbids); unknown values show an empty bar and '?'."""
    known = isinstance(used, int | float) and isinstance(total, int | float) and total > 0
    high, top = (0.7 * total, 0.9 * total) if known else (0, 0)
    return render(
        '<div class="bar"><span class="bar-label">$label</span>'
        '<meter min="0" max="$total" value="$used" low="$high" high="$top" optimum="0" '
        'title="$label: $text">$text</meter><span class="bar-text">$text</span></div>',
        label=label, text=text if known else "?", total=total if known else 1,
        used=used if known else 0, high=high, top=top)


def table(headers: Iterable[Any], rows: Iterable[Iterable[Any]], css: str = "") -> Markup:
    head = join(render("<th>$h</th>", h=h) for h in headers)
    body = join(render("<tr>$cells</tr>", cells=join(render("<td>$c</td>", c=c) for c in row))
                for row in rows)
    return render('<table class="$css"><thead><tr>$head</tr></thead><tbody>$body</tbody>'
                  '</table>', css=css, head=head, body=body)


def link(href: str, text: Any) -> Markup:
    return render('<a href="$href">$text</a>', href=href, text=text)


def csrf_field(token: str) -> Markup:
    return render('<input type="hidden" name="csrf" value="$token">', token=token)


def post_button(action: str, label: str, csrf: str, css: str = "",
                fields: dict[str, str] | None = None) -> Markup:
    """A one-button form that POSTs (every change is a POST carrying the CSRF token)."""
    hidden = join(render('<input type="hidden" name="$k" value="$v">', k=k, v=v)
                  for k, v in (fields or {}).items())
    return render('<form method="post" action="$action" class="inline">$csrf$hidden'
                  '<button type="submit" class="$css">$label</button></form>',
                  action=action, csrf=csrf_field(csrf), hidden=hidden, css=css, label=label)


_LAYOUT = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>$title · $cluster</title>
<link rel="stylesheet" href="/ui/static/ui.css">
<script src="/ui/static/ui.js" defer></script>
$head
</head>
<body>
<header class="top">
<a class="brand" href="/ui/">cardume</a> <span class="cluster">$cluster</span>
<nav>$nav</nav>
<span class="who">$who</span>
</header>
<main>
<h1>$title</h1>
$flash
$body
</main>
</body>
</html>
"""

NAV = (("/ui/", "Dashboard"), ("/ui/instances", "Instances"), ("/ui/create", "Create"),
       ("/ui/jobs", "Jobs"))


def layout(title: str, body: Markup, *, user: str | None = None, access: str = "",
           csrf: str = "", cluster: str = "", flash: str = "", head: Markup = EMPTY,
           current: str = "") -> Markup:
    """A whole page: navigation, who is logged in (and a logout button), then ``body``."""
    if user:
        nav = join(render('<a href="$href"$cur>$text</a>', href=href, text=text,
                          cur=Markup(' class="current"') if href == current else Markup(""))
                   for href, text in NAV if href != "/ui/create" or access == "write")
        who = render('$user ($access) $logout', user=user, access=access,
                     logout=post_button("/ui/logout", "Log out", csrf, "link"))
    else:
        nav, who = Markup(""), Markup("")
    note = render('<p class="flash">$flash</p>', flash=flash) if flash else Markup("")
    return render(_LAYOUT, title=title, cluster=cluster or "cardume", nav=nav, who=who,
                  flash=note, body=body, head=head)
