"""The REST API's users file (Ganeti's format) and who may do what with HTTP Basic."""

from __future__ import annotations

import base64
import hashlib
import logging
import os
from pathlib import Path

import pytest

from cardume.rapi import auth
from cardume.rapi.base import RapiError

HA1 = hashlib.md5(b"carol:Ganeti Remote API:s3cret").hexdigest()
USERS = f"""\
# a comment, then a blank line

alice plainpw write
bob {{cleartext}}bobpw read
carol {{HA1}}{HA1} read,write
dave davepw
erin {{CLEARTEXT}}erinpw   read , write
"""


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@pytest.fixture
def users() -> dict[str, auth.User]:
    return auth.parse_users(USERS)


def test_parse_users_reads_names_passwords_and_access(users: dict[str, auth.User]) -> None:
    assert sorted(users) == ["alice", "bob", "carol", "dave", "erin"]
    assert users["alice"].options == {"write"}
    assert users["bob"].options == {"read"}
    assert users["carol"].options == {"read", "write"}
    assert users["dave"].options == set()
    assert users["erin"].options == {"read", "write"}


@pytest.mark.parametrize("name,password,ok", [
    ("alice", "plainpw", True), ("alice", "plainp", False),
    ("bob", "bobpw", True), ("bob", "{cleartext}bobpw", False),
    ("carol", "s3cret", True), ("carol", HA1, False),
    ("erin", "erinpw", True),
])
def test_passwords_plain_cleartext_and_ha1(users: dict[str, auth.User], name: str,
                                           password: str, ok: bool) -> None:
    assert users[name].password_matches(password) is ok


def test_bad_lines_are_skipped_and_logged_without_the_password(
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, "cardume.rapi.auth")
    users = auth.parse_users("lonely\nfrank {md5}topsecretpw read\ngina pw root,read\n")
    assert "lonely" not in users
    assert not users["frank"].password_matches("topsecretpw")  # unknown scheme: no login
    assert users["gina"].options == {"read"}
    text = caplog.text
    assert "line 1" in text and "line 2" in text and "root" in text
    assert "topsecretpw" not in text


@pytest.mark.parametrize("header,access,method,anonymous,expected", [
    (None, "read", "GET", False, 401),
    (None, None, "GET", False, 401),          # everything needs a user by default
    (None, "write", "PUT", True, 401),        # anonymous reads never write
    (None, "read", "PUT", True, 401),
    (basic("bob", "wrong"), "read", "GET", True, 401),  # credentials sent are checked
    (basic("nobody", "bobpw"), "read", "GET", False, 401),
    (basic("bob", "bobpw"), "write", "POST", False, 403),
    (basic("dave", "davepw"), "read", "GET", False, 403),
    ("Digest abc", "read", "GET", False, 401),
    ("Basic !!notbase64", "read", "GET", False, 401),
    ("Basic " + base64.b64encode(b"nocolon").decode(), "read", "GET", False, 401),
])
def test_refusals(users: dict[str, auth.User], header: str | None, access: auth.Access,
                  method: str, anonymous: bool, expected: int) -> None:
    with pytest.raises(RapiError) as caught:
        auth.authorize(users, header, access, method, anonymous)
    assert caught.value.status == expected
    if expected == 401:
        assert caught.value.headers == {"WWW-Authenticate": 'Basic realm="Ganeti Remote API"'}
    assert "pw" not in caught.value.message and "s3cret" not in caught.value.message


@pytest.mark.parametrize("header,access,method,anonymous,user", [
    (basic("alice", "plainpw"), "read", "GET", False, "alice"),   # write implies read
    (basic("alice", "plainpw"), "write", "PUT", False, "alice"),
    (basic("bob", "bobpw"), "read", "GET", False, "bob"),
    (basic("carol", "s3cret"), "write", "DELETE", False, "carol"),
    (basic("dave", "davepw"), None, "GET", False, "dave"),        # no options: only /version
    (None, "read", "GET", True, None),
    (None, None, "GET", True, None),
])
def test_grants(users: dict[str, auth.User], header: str | None, access: auth.Access,
                method: str, anonymous: bool, user: str | None) -> None:
    assert auth.authorize(users, header, access, method, anonymous) == user


def test_users_file_is_read_again_when_it_changes(tmp_path: Path) -> None:
    path = tmp_path / "users"
    users = auth.UsersFile(str(path))
    assert users.users() == {}  # no file: nobody
    path.write_text("alice pw1 read\n")
    assert users.users()["alice"].password_matches("pw1")
    replacement = tmp_path / "users.new"
    replacement.write_text("alice pw2 read\nbob pw3 write\n")
    os.replace(replacement, path)  # as an editor saves it: a new inode
    assert users.users()["alice"].password_matches("pw2")
    assert sorted(users.users()) == ["alice", "bob"]
    path.write_text("bob pw4 write\n")  # rewritten in place: size and mtime change
    stamp = path.stat().st_mtime_ns
    os.utime(path, ns=(stamp + 10**9, stamp + 10**9))
    assert sorted(users.users()) == ["bob"]
    path.unlink()
    assert users.users() == {}
