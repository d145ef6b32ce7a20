"""Fixtures and fakes the unit tests share (one copy each):

- ``lu_kit``: a one-node cluster whose logical units run through the real opcode path
  (tests/unit/lu_kit.py; call ``lu_kit.make`` for other nodes or settings);
- ``fake_client``: the LUXI client the CLI uses, replaced by ``fakes_kit.FakeClient``.

Plain helpers that module-level code calls (``fakes_kit.drbd_sections``, ``loop_kit``) are
imported from their kit modules: a conftest is not importable by name.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from fakes_kit import FakeClient

if TYPE_CHECKING:  # the kit imports most of cardume: only the tests that use it pay for it
    import lu_kit as kit_module


@pytest.fixture
def lu_kit(tmp_path: Path) -> Iterator[kit_module.LuKit]:
    import lu_kit as kit_module
    kit = kit_module.make(tmp_path / "kit")
    try:
        yield kit
    finally:
        kit.close()


# --- the LUXI client ---------------------------------------------------------------------

@pytest.fixture
def fake_client(monkeypatch: pytest.MonkeyPatch) -> type[FakeClient]:
    FakeClient.calls = []
    FakeClient.outcomes = {}
    FakeClient.replies = {}
    # the CLI modules that import the name at their top keep their own reference
    monkeypatch.setattr("cardume.master.client.Client", FakeClient)
    monkeypatch.setattr("cardume.cli.common.Client", FakeClient)
    return FakeClient
