"""The operation table's machinery: a parameter (:class:`Param`), the opcode base class
with its checks, and the registry every opcode class enters by being defined."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from cardume import constants, errors
from cardume.rules.paramtypes import (
    TBool,
    TList,
    TMaybeList,
    TMaybeString,
    TNonNegInt,
    Type,
    int_range,
)

TPriority = int_range(constants.OP_PRIO_HIGHEST, constants.OP_PRIO_LOWEST, "priority -20..19")


@dataclass(frozen=True, slots=True)
class Param:
    """One parameter of an operation: everything the CLI, the master and the docs know."""

    name: str
    type: Type
    default: Any = None
    doc: str = ""
    required: bool = False
    secret: bool = False
    """Never shown (job info, queries, logs) and dropped from the stored job once it ended."""
    choices: tuple[Any, ...] | None = None
    """The only values allowed, when the set is fixed (None, where allowed, means unset)."""

    def check(self, op_id: str, value: Any) -> None:
        """Refuse a value (not None) that the type or the choices do not allow."""
        if not self.type.check(value):
            raise errors.WrongInput(
                f"{op_id}: parameter '{self.name}' must be {self.type.name}, not {value!r}")
        if self.choices is not None and value not in self.choices:
            allowed = ", ".join(map(str, self.choices))
            raise errors.WrongInput(
                f"{op_id}: parameter '{self.name}' must be one of {allowed}, not {value!r}")


REDACTED = "<redacted>"


COMMON_PARAMS = (
    Param("dry_run", TBool, False, "check prerequisites only, change nothing"),
    Param("debug_level", TNonNegInt, 0, "debug level"),
    Param("priority", TPriority, constants.OP_PRIO_NORMAL, "job priority, -20 (high)..19"),
    Param("depends", TMaybeList, None, "jobs this one waits for: [[job_id, [statuses]]]"),
    Param("comment", TMaybeString, None, "free-form comment"),
    Param("reason", TList, [], "reason trail: [[source, reason, timestamp]]"),
)

REGISTRY: dict[str, type[OpCode]] = {}


class OpCode:
    """Base of every opcode. Subclasses declare OP_ID, PARAMS and optionally OP_DSC_FIELD."""

    OP_ID: ClassVar[str] = ""
    PARAMS: ClassVar[tuple[Param, ...]] = ()
    OP_DSC_FIELD: ClassVar[str | None] = None
    DOC: ClassVar[str] = ""
    _ALL: ClassVar[dict[str, Param]] = {}
    SECRETS: ClassVar[tuple[str, ...]] = ()
    unchecked = False
    """Read back from the store without passing today's checks (see from_stored)."""
    CANCELABLE: ClassVar[bool] = False
    """A running job may be canceled while it runs this opcode (it changes nothing)."""

    def __init_subclass__(cls) -> None:
        super().__init_subclass__()
        cls._ALL = {p.name: p for p in (*COMMON_PARAMS, *cls.PARAMS)}
        cls.SECRETS = tuple(p.name for p in cls._ALL.values() if p.secret)
        if cls.OP_ID:
            REGISTRY[cls.OP_ID] = cls

    def __init__(self, **values: Any) -> None:
        for name, param in self._ALL.items():
            if name in values and values[name] is not None:
                value = values.pop(name)
            elif param.required:
                raise errors.WrongInput(f"{self.OP_ID}: parameter '{name}' is required")
            else:
                values.pop(name, None)
                value = _copy_default(param.default)
            if value is not None:
                param.check(self.OP_ID, value)
            setattr(self, name, value)
        if values:
            unknown = ", ".join(sorted(values))
            raise errors.WrongInput(f"{self.OP_ID}: unknown parameter(s) {unknown}")

    def __getattr__(self, name: str) -> Any:  # for mypy: parameters are set dynamically
        raise AttributeError(name)

    def to_dict(self, redact: bool = False) -> dict[str, Any]:
        """The opcode as data; with ``redact`` its secret parameters read ``<redacted>``."""
        data = {name: getattr(self, name) for name in self._ALL}
        if redact:
            for name in self.SECRETS:
                if data.get(name) is not None:
                    data[name] = REDACTED
        data["OP_ID"] = self.OP_ID
        return data

    @staticmethod
    def from_dict(data: dict[str, Any]) -> OpCode:
        values = dict(data)
        op_id = values.pop("OP_ID", None)
        cls = REGISTRY.get(str(op_id))
        if cls is None:
            raise errors.WrongInput(f"unknown opcode {op_id!r}")
        return cls(**values)

    @staticmethod
    def from_stored(data: dict[str, Any]) -> OpCode:
        """An opcode read back from the job store. What an older version stored is kept as
        it was even where today's checks refuse it, so that every old job can still be
        listed; a queued one is checked again before it runs (jobs/queue.py)."""
        try:
            return OpCode.from_dict(data)
        except errors.WrongInput:
            cls = REGISTRY.get(str(data.get("OP_ID"))) or _UnknownOp
            op = object.__new__(cls)
            for name, param in cls._ALL.items():
                setattr(op, name, data.get(name, _copy_default(param.default)))
            op.unchecked = True
            return op

    def summary(self) -> str:
        """Ganeti's job summary: the OP_ID without its prefix, and the described field."""
        text = self.OP_ID.removeprefix("OP_")
        if self.OP_DSC_FIELD:
            value = getattr(self, self.OP_DSC_FIELD)
            if isinstance(value, (list, tuple)):
                value = ",".join(map(str, value))
            text += f"({value})"
        return text


class _UnknownOp(OpCode):
    """Stands for a stored opcode this version does not know (its summary says so)."""

    OP_ID = ""  # not registered: it is never submitted
    DOC = "An opcode this version of cardume does not know."

    def summary(self) -> str:
        return "UNKNOWN"


def _copy_default(value: Any) -> Any:
    if isinstance(value, (dict, list)):
        return type(value)(value)
    return value
