"""Opcodes validate their parameters and describe themselves."""

from __future__ import annotations

import pytest

from cardume import errors, opcodes


def test_round_trip_and_summary() -> None:
    op = opcodes.OpCode.from_dict({"OP_ID": "OP_TEST_DELAY", "duration": 1.5})
    assert isinstance(op, opcodes.OpTestDelay)
    assert op.summary() == "TEST_DELAY(1.5)"
    again = opcodes.OpCode.from_dict(op.to_dict())
    assert again.to_dict() == op.to_dict()
    assert opcodes.OpNodeAdd(node_name="node2").summary() == "NODE_ADD(node2)"


def test_defaults_are_not_shared_between_instances() -> None:
    first = opcodes.OpTestDelay(duration=0)
    first.on_nodes.append("x")
    assert opcodes.OpTestDelay(duration=0).on_nodes == []


@pytest.mark.parametrize(("data", "message"), [
    ({"OP_ID": "OP_NOPE"}, "unknown opcode 'OP_NOPE'"),
    ({"OP_ID": "OP_TEST_DELAY"}, "parameter 'duration' is required"),
    ({"OP_ID": "OP_TEST_DELAY", "duration": -1}, "must be seconds, 0 to 86400, not -1"),
    ({"OP_ID": "OP_TEST_DELAY", "duration": float("inf")}, "0 to 86400, not inf"),
    ({"OP_ID": "OP_TEST_DELAY", "duration": 1e308}, "0 to 86400, not 1e[+]308"),
    ({"OP_ID": "OP_TEST_DELAY", "duration": 100000}, "0 to 86400, not 100000"),
    ({"OP_ID": "OP_TEST_DELAY", "duration": float("nan")}, "0 to 86400, not nan"),
    ({"OP_ID": "OP_TEST_DELAY", "duration": 1, "repeat": 10**6}, "0..1000"),
    ({"OP_ID": "OP_TEST_DELAY", "duration": 1, "bogus": 2}, "unknown parameter"),
    ({"OP_ID": "OP_TEST_DELAY", "duration": 1, "priority": 99}, "priority -20..19"),
    ({"OP_ID": "OP_NODE_SET_PARAMS", "node_name": "n", "offline": "yes"}, "bool"),
])
def test_bad_opcodes_are_refused_with_the_value(data: dict[str, object], message: str) -> None:
    with pytest.raises(errors.WrongInput, match=message):
        opcodes.OpCode.from_dict(data)
