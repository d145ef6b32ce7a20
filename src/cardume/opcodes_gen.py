"""Write ``cli/optable.py``: the operation table of ``opcodes/`` as plain literals.

    python -m cardume.opcodes_gen            rewrite src/cardume/cli/optable.py
    python -m cardume.opcodes_gen --check    exit 1 if it is stale

The ``gnt-*`` commands read every operation's parameter choices, defaults and docs from that
copy instead of importing ``opcodes`` (dataclasses and typing would slow every command's
start). The copy's hand-written part (its docstring and accessors) ends at :data:`MARKER`;
everything after it is rewritten from the table here. tests/unit/test_optable.py fails when
the copy is stale.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from cardume import opcodes

TARGET = Path(__file__).resolve().parent / "cli" / "optable.py"
COMMAND = "python -m cardume.opcodes_gen"
MARKER = f"# --- written by `{COMMAND}` from opcodes/: do not edit below ---\n"
WIDTH = 99


def _lit(value: Any) -> str:
    """A short Python literal, double-quoted as the rest of the tree."""
    if isinstance(value, str):
        return repr(value) if '"' in value or "\\" in value else f'"{value}"'
    if isinstance(value, tuple):
        inner = ", ".join(map(_lit, value))
        return f"({inner},)" if len(value) == 1 else f"({inner})"
    if isinstance(value, list):
        return "[" + ", ".join(map(_lit, value)) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_lit(k)}: {_lit(v)}" for k, v in value.items()) + "}"
    if value is None or isinstance(value, (bool, int, float)):
        return repr(value)
    raise TypeError(f"no literal for {value!r} ({type(value).__name__})")


def _fmt(value: Any, indent: int, head: str, tail: str) -> list[str]:
    """Lines of ``head + literal + tail`` at ``indent``; a tuple that does not fit on one
    line is packed on as few lines as fit, aligned after its opening parenthesis."""
    pad = " " * indent
    line = f"{pad}{head}{_lit(value)}{tail}"
    if len(line) <= WIDTH:
        return [line]
    if isinstance(value, str) and head:  # the value on a line of its own
        return [f"{pad}{head.rstrip()}", f"{pad}    {_lit(value)}{tail}"]
    if not isinstance(value, tuple) or len(value) < 2:
        return [line]
    inner = indent + len(head) + 1
    lines: list[str] = []
    current = f"{pad}{head}("
    for i, item in enumerate(value):
        end = ")" + tail if i == len(value) - 1 else ","
        text = _lit(item) + end
        joiner = "" if current.endswith("(") else " "
        if len(current) + len(joiner) + len(text) <= WIDTH:
            current += joiner + text
            continue
        if not current.endswith("("):
            lines.append(current)
            current = " " * inner
        if len(current) + len(text) <= WIDTH:
            current += text
        else:  # the item alone is too long: break it in turn
            first, *rest = _fmt(item, inner, "", end)
            lines.append(current + first.lstrip())
            lines += rest[:-1]
            current = rest[-1] if rest else " " * inner
            if not rest:
                current = ""
    if current.strip():
        lines.append(current)
    return lines


def _entry(param: opcodes.Param) -> tuple[Any, ...]:
    choices = tuple(param.choices) if param.choices is not None else None
    return (param.type.name, param.default, choices, param.required, param.doc)


def _params(params: Any, indent: int) -> list[str]:
    lines: list[str] = []
    for param in params:
        lines += _fmt(_entry(param), indent, f"{_lit(param.name)}: ", ",")
    return lines


def render_data() -> str:
    """The generated part of cli/optable.py."""
    lines = ["", "#: Parameters every operation has.", "COMMON: dict[str, Entry] = {"]
    lines += _params(opcodes.COMMON_PARAMS, 4)
    lines += ["}", "", "#: Each operation's own parameters, by OP_ID.",
              "OPS: dict[str, dict[str, Entry]] = {"]
    for op_id in sorted(opcodes.REGISTRY):
        cls = opcodes.REGISTRY[op_id]
        if not cls.PARAMS:
            lines.append(f"    {_lit(op_id)}: {{}},")
            continue
        lines.append(f"    {_lit(op_id)}: {{")
        lines += _params(cls.PARAMS, 8)
        lines.append("    },")
    lines += ["}", "", "#: What each operation does.", "OP_DOCS: dict[str, str] = {"]
    for op_id in sorted(opcodes.REGISTRY):
        lines += _fmt(opcodes.REGISTRY[op_id].DOC, 4, f"{_lit(op_id)}: ", ",")
    lines.append("}")
    return "\n".join(lines) + "\n"


def render(current: str) -> str:
    """``current`` (the file as it is) with its generated part made anew."""
    head, found, _ = current.partition(MARKER)
    if not found:
        raise SystemExit(f"{TARGET}: the line {MARKER.strip()!r} is missing")
    return head + MARKER + render_data()


def main(argv: list[str]) -> int:
    current = TARGET.read_text(encoding="utf-8")
    fresh = render(current)
    if argv == ["--check"]:
        if fresh != current:
            print(f"{TARGET} is stale: run {COMMAND}", file=sys.stderr)
            return 1
        return 0
    if argv:
        print(f"usage: {COMMAND} [--check]", file=sys.stderr)
        return 2
    if fresh != current:
        TARGET.write_text(fresh, encoding="utf-8")
        print(f"wrote {TARGET}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
