"""The test tree itself: pytest imports test modules by their base name (the test
directories are not packages, so that tests/qa can import its harness), so two test files
with one name in different directories break the whole run at collection."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]


def test_every_test_module_has_its_own_name() -> None:
    names = Counter(path.name for path in TESTS.rglob("test_*.py"))
    assert [name for name, count in names.items() if count > 1] == []
