"""Form bodies of the console: URL-encoded only, UTF-8, bounded."""

from __future__ import annotations

import pytest

from cardume.rapi.ui.forms import FORM_TYPE, FormError, field, parse_form


def test_a_form_body() -> None:
    form = parse_form(b"name=web%2Da&disks=0%3Asize%3D1G%0A1%3Asize%3D2G&x=&name=b",
                      FORM_TYPE + "; charset=UTF-8")
    assert form["disks"] == ["0:size=1G\n1:size=2G"] and form["x"] == [""]
    assert field(form, "name") == "b" and field(form, "missing", "d") == "d"
    assert parse_form(b"", None) == {}
    assert parse_form(b"n=%C3%A9", FORM_TYPE) == {"n": ["é"]}


@pytest.mark.parametrize("body,ctype,status", [
    (b'{"a": 1}', "application/json", 415),
    (b"a=1", None, 415),
    (b"a=1", "multipart/form-data; boundary=x", 415),
    (b"a=\xff", FORM_TYPE, 400),
    (b"a=%ff", FORM_TYPE, 400),
    (b"novalue", FORM_TYPE, 400),
    (b"&".join(b"k%d=1" % i for i in range(201)), FORM_TYPE, 400),
])
def test_bad_form_bodies(body: bytes, ctype: str | None, status: int) -> None:
    with pytest.raises(FormError) as err:
        parse_form(body, ctype)
    assert err.value.status == status and err.value.message
