"""The console's HTML helpers: every value escaped unless it is Markup already."""

from __future__ import annotations

from cardume.rapi.ui import html


def test_render_escapes_every_value() -> None:
    out = html.render("<td>$v</td><a title=\"$t\">", v="<script>alert(1)</script>",
                      t='"><img src=x onerror=alert(1)>')
    assert out == ("<td>&lt;script&gt;alert(1)&lt;/script&gt;</td>"
                   "<a title=\"&quot;&gt;&lt;img src=x onerror=alert(1)&gt;\">")
    assert "<script>" not in out


def test_markup_is_not_escaped_twice() -> None:
    inner = html.render("<b>$x</b>", x="a&b")
    assert html.render("<p>$y</p>", y=inner) == "<p><b>a&amp;b</b></p>"
    assert html.esc(None) == "" and html.esc(5) == "5"


def test_a_table_escapes_its_cells_and_headers() -> None:
    out = html.table(["<h>"], [["<tag>", html.Markup("<i>ok</i>")]])
    assert "&lt;h&gt;" in out and "&lt;tag&gt;" in out and "<i>ok</i>" in out


def test_bars_with_unknown_values() -> None:
    assert "?" in html.bar("memory", None, 1024, "x")
    full = html.bar("disk", 950, 1000, "950M / 1000M")
    assert 'value="950"' in full and 'max="1000"' in full


def test_layout_escapes_the_title_and_flash() -> None:
    page = html.layout("<x>", html.Markup("<p>body</p>"), user="<u>", access="read",
                       csrf="tok", flash="bad <value>")
    assert "&lt;x&gt;" in page and "bad &lt;value&gt;" in page and "&lt;u&gt;" in page
    assert "<p>body</p>" in page and 'value="tok"' in page
    assert "/ui/create" not in page  # a read user is not offered the create form


def test_sizes() -> None:
    assert html.mib(512) == "512M" and html.mib(2048) == "2.0G" and html.mib(None) == "?"
