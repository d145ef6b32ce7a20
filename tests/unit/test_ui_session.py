"""Console sessions: ids, expiry, logout, the cookie's attributes, CSRF and origin checks."""

from __future__ import annotations

from cardume.rapi.ui import session


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_session_lives_until_idle_or_old() -> None:
    clock = Clock()
    store = session.Sessions(idle=60, lifetime=300, clock=clock)
    s = store.create("admin")
    assert len(s.id) >= 40 and s.csrf != s.id
    assert store.get(s.id) == (s, False)
    clock.now += 59
    assert store.get(s.id)[0] is s  # each request renews the idle deadline
    clock.now += 61
    assert store.get(s.id) == (None, True)  # idle too long: expired, and said so
    assert store.get(s.id) == (None, True)
    t = store.create("admin")
    for _ in range(6):
        clock.now += 55
        store.get(t.id)
    assert store.get(t.id) == (None, True)  # past its lifetime however busy


def test_ids_are_random_and_logout_ends_a_session() -> None:
    store = session.Sessions()
    a, b = store.create("x"), store.create("x")
    assert a.id != b.id and a.csrf != b.csrf
    store.drop(a.id)
    assert store.get(a.id) == (None, True)
    assert store.get(None) == (None, False) and store.get("") == (None, False)


def test_the_store_is_bounded() -> None:
    store = session.Sessions(max_sessions=3)
    ids = [store.create("u").id for _ in range(5)]
    assert len(store) == 3 and store.get(ids[0])[0] is None and store.get(ids[-1])[0]


def test_cookie_attributes_and_parsing() -> None:
    s = session.Sessions().create("u")
    cookie = session.set_cookie(s)
    for part in ("HttpOnly", "Secure", "SameSite=Strict", "Path=/ui/"):
        assert part in cookie
    assert "u" not in cookie.split(";")[0].partition("=")[2].replace(s.id, "")
    assert session.cookie_value(f"a=1; cardume_ui={s.id}; b=2") == s.id
    assert session.cookie_value("a=1") is None and session.cookie_value(None) is None
    assert "Max-Age=0" in session.clear_cookie()


def test_csrf_token_must_match() -> None:
    s = session.Sessions().create("u")
    assert session.csrf_ok(s, s.csrf)
    assert not session.csrf_ok(s, None) and not session.csrf_ok(s, "")
    assert not session.csrf_ok(s, s.csrf[:-1] + "x")


def test_same_origin() -> None:
    host = {"host": "10.0.0.1:5080"}
    assert session.same_origin({**host, "origin": "https://10.0.0.1:5080"})
    assert not session.same_origin({**host, "origin": "https://evil.example"})
    assert not session.same_origin({**host, "origin": "http://10.0.0.1:5080"})
    assert not session.same_origin({**host, "origin": "null"})
    assert session.same_origin({**host, "referer": "https://10.0.0.1:5080/ui/x"})
    assert not session.same_origin({**host, "referer": "https://10.0.0.1:5080.evil/ui/"})
    assert not session.same_origin(host)  # neither: refused
    assert not session.same_origin({"origin": "https://10.0.0.1:5080"})  # no Host


def test_password_guessing_is_throttled_per_name() -> None:
    clock = Clock()
    throttle = session.LoginThrottle(limit=3, window=60, clock=clock)
    for _ in range(3):
        assert throttle.blocked("admin") == 0
        throttle.failed("admin")
    assert throttle.blocked("admin") == 60 and throttle.blocked("other") == 0
    clock.now += 61
    assert throttle.blocked("admin") == 0
    throttle.failed("admin")
    throttle.succeeded("admin")
    assert throttle.blocked("admin") == 0
