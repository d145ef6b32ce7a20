"""What travels between master and node: argument kinds and the typed structures.

The call table (rpc/calls.py) declares each call's arguments and result with ordinary type
annotations; :func:`kind_of` turns an annotation into a :class:`Kind` that checks a decoded
JSON value against it (the node daemon, on every argument it gets; the master, on every
result) and encodes a value for the wire (a structure becomes its dict).

The structures are the disk, the NIC and the instance as a node gets them. Their dicts are
exactly what the master sent before they were typed (same keys, same values), so the JSON
bodies did not change; a structure refuses unknown keys, so a key one side adds and the
other does not know fails loudly instead of being dropped on the way.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar, Union

from cardume import errors, objects

W = TypeVar("W", bound="Wire")


class Kind:
    """Checks and converts values of one annotation; ``where`` names the value in errors."""

    def __init__(self, name: str, decode: Callable[[Any, str], Any],
                 encode: Callable[[Any], Any] | None = None) -> None:
        self.name = name
        self._decode = decode
        self._encode = encode

    def decode(self, value: Any, where: str) -> Any:
        return self._decode(value, where)

    def encode(self, value: Any) -> Any:
        return value if self._encode is None else self._encode(value)

    def __repr__(self) -> str:
        return f"Kind({self.name})"


def _kind_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    return {int: "an integer", float: "a number", str: "a string", list: "a list",
            dict: "an object"}.get(type(value), type(value).__name__)


def _refuse(where: str, expected: str, value: Any) -> errors.WrongInput:
    return errors.WrongInput(f"{where} must be {expected}, not {_kind_name(value)}")


def _scalar(name: str, accepts: Callable[[Any], bool],
            convert: Callable[[Any], Any] | None = None) -> Kind:
    def decode(value: Any, where: str) -> Any:
        if not accepts(value):
            raise _refuse(where, name, value)
        return convert(value) if convert else value
    return Kind(name, decode)


ANY = Kind("anything", lambda value, where: value)
STR = _scalar("a string", lambda v: isinstance(v, str))
BOOL = _scalar("a boolean", lambda v: isinstance(v, bool))
INT = _scalar("an integer", lambda v: isinstance(v, int) and not isinstance(v, bool))
FLOAT = _scalar("a number", lambda v: isinstance(v, int | float) and not isinstance(v, bool),
                float)
NONE = _scalar("null", lambda v: v is None)


def _optional(inner: Kind) -> Kind:
    def decode(value: Any, where: str) -> Any:
        return None if value is None else inner.decode(value, where)
    return Kind(f"{inner.name} or null", decode,
                lambda value: None if value is None else inner.encode(value))


def _list(item: Kind) -> Kind:
    def decode(value: Any, where: str) -> Any:
        if not isinstance(value, list):
            raise _refuse(where, f"a list of {item.name}", value)
        if item is ANY:
            return value
        return [item.decode(v, f"{where}[{i}]") for i, v in enumerate(value)]
    encode = None if item._encode is None else (lambda value: [item.encode(v) for v in value])
    return Kind(f"a list of {item.name}", decode, encode)


def _dict(item: Kind) -> Kind:
    def decode(value: Any, where: str) -> Any:
        if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
            raise _refuse(where, "an object", value)
        if item is ANY:
            return value
        return {k: item.decode(v, f"{where}.{k}") for k, v in value.items()}
    encode = None if item._encode is None else (
        lambda value: {k: item.encode(v) for k, v in value.items()})
    return Kind("an object", decode, encode)


def _struct(cls: type[Wire]) -> Kind:
    def decode(value: Any, where: str) -> Any:
        return cls.from_dict(value, where)
    article = "an" if cls.WHAT[0] in "aeiou" else "a"
    return Kind(f"{article} {cls.WHAT}", decode, lambda value: cls.from_dict(value).to_dict())


_SCALARS: dict[Any, Kind] = {Any: ANY, str: STR, bool: BOOL, int: INT, float: FLOAT,
                             type(None): NONE, None: NONE}


def kind_of(annotation: Any) -> Kind:
    """The Kind of a (resolved) annotation: str, int, float, bool, None, Any, X | None,
    list[X], dict[str, X], or a Wire structure. Anything else is a mistake in the table."""
    if annotation in _SCALARS:
        return _SCALARS[annotation]
    if isinstance(annotation, type) and issubclass(annotation, Wire):
        return _struct(annotation)
    origin, params = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (types.UnionType, Union):
        rest = [p for p in params if p is not type(None)]
        if len(rest) == 1 and len(params) == 2:
            return _optional(kind_of(rest[0]))
    if origin is list and len(params) == 1:
        return _list(kind_of(params[0]))
    if origin is dict and len(params) == 2 and params[0] is str:
        return _dict(kind_of(params[1]))
    raise TypeError(f"no wire kind for {annotation!r}")


# --- the structures ---------------------------------------------------------------------

class Wire:
    """A structure that travels as a JSON object: its dataclass fields are the keys.

    Fields without a default must be present; fields marked :func:`extra` are left out of
    the dict while they are None (only some specs carry them, as before they were typed)."""

    WHAT: ClassVar[str] = "structure"
    _kinds: ClassVar[dict[str, Kind]]
    _required: ClassVar[frozenset[str]]
    _omit_none: ClassVar[frozenset[str]]

    @classmethod
    def _prepare(cls) -> None:
        if "_kinds" in cls.__dict__:
            return
        hints = typing.get_type_hints(cls)
        fields = dataclasses.fields(cls)  # type: ignore[arg-type]
        cls._kinds = {f.name: kind_of(hints[f.name]) for f in fields}
        cls._required = frozenset(
            f.name for f in fields if f.default is dataclasses.MISSING
            and f.default_factory is dataclasses.MISSING)
        cls._omit_none = frozenset(f.name for f in fields if f.metadata.get("extra"))

    @classmethod
    def from_dict(cls: type[W], data: Any, where: str | None = None) -> W:
        """The structure a JSON object describes (a structure is taken as it is);
        WrongInput names the bad key."""
        if isinstance(data, cls):
            return data
        cls._prepare()
        where = where or f"the {cls.WHAT}"
        if not isinstance(data, dict):
            raise _refuse(where, f"an object ({cls.WHAT})", data)
        unknown = sorted(set(data) - set(cls._kinds))
        if unknown:
            raise errors.WrongInput(f"{where} has unknown key(s) {', '.join(unknown)} "
                                    f"(expected {', '.join(cls._kinds)})")
        missing = sorted(cls._required - set(data))
        if missing:
            raise errors.WrongInput(f"{where} lacks {', '.join(missing)}")
        values = {k: cls._kinds[k].decode(v, f"{where}.{k}") for k, v in data.items()}
        return cls(**values)

    @classmethod
    def from_list(cls: type[W], items: Iterable[Any]) -> list[W]:
        """:meth:`from_dict` of each item."""
        return [cls.from_dict(item) for item in items]

    def to_dict(self) -> dict[str, Any]:
        """The JSON object the structure travels as."""
        cls = type(self)
        cls._prepare()
        out: dict[str, Any] = {}
        for name, kind in cls._kinds.items():
            value = getattr(self, name)
            if value is None and name in cls._omit_none:
                continue
            out[name] = kind.encode(value)
        return out


def extra() -> Any:
    """A field only some specs carry: None, and then absent from the dict."""
    return field(default=None, metadata={"extra": True})


@dataclass(slots=True)
class DiskSpec(Wire):
    """A disk as one node gets it (node/storage builds its block device from it).

    ``logical_id`` as in the configuration ([vg, lv], [driver, path], or the DRBD tuple);
    a DRBD disk also has its two LV ``children`` and the ``dynamic_params`` seen from this
    node (its and its peer's replication address and minor). ``path`` is filled in by the
    node once the disk is assembled, for the hypervisor and the OS scripts."""

    WHAT: ClassVar[str] = "disk spec"

    dev_type: str
    logical_id: list[Any]
    size: int = 0
    params: dict[str, Any] = field(default_factory=dict)
    uuid: str | None = None
    name: str | None = None
    mode: str | None = None
    iv_name: str | None = None
    children: list[DiskSpec] | None = extra()
    dynamic_params: dict[str, Any] | None = extra()
    path: str | None = extra()

    @classmethod
    def of(cls, disk: objects.Disk) -> DiskSpec:
        """A configured disk as every node gets it (a DRBD disk adds its node's view)."""
        return cls(dev_type=disk.dev_type, logical_id=list(disk.logical_id), size=disk.size,
                   params=dict(disk.params), uuid=disk.uuid, name=disk.name,
                   mode=disk.mode, iv_name=disk.iv_name)


@dataclass(slots=True)
class NicSpec(Wire):
    """A NIC with its parameters filled through cluster, group and NIC."""

    WHAT: ClassVar[str] = "NIC spec"

    mac: str | None = None
    uuid: str | None = None
    name: str | None = None
    ip: str | None = None
    network: str | None = None
    mode: str | None = None
    link: str | None = None
    vlan: str | None = None


@dataclass(slots=True)
class InstanceSpec(Wire):
    """An instance as a node gets it: parameters filled through every layer, its disks
    as this node sees them. Given to the hypervisor (start, migrate) and the OS scripts."""

    WHAT: ClassVar[str] = "instance spec"

    name: str
    uuid: str | None = None
    os: str | None = None
    hypervisor: str | None = None
    hvparams: dict[str, Any] = field(default_factory=dict)
    beparams: dict[str, Any] = field(default_factory=dict)
    osparams: dict[str, Any] = field(default_factory=dict)
    disk_template: str | None = None
    disks: list[DiskSpec] = field(default_factory=list)
    nics: list[NicSpec] = field(default_factory=list)
    debug_level: int = 0
    uid_pool: list[Any] | None = extra()  # only with security_model=pool: the node picks
    mirror_disks: bool | None = extra()  # migration with --copy-disks: the target mirrors

    @classmethod
    def from_dict(cls, data: Any, where: str | None = None) -> InstanceSpec:
        spec = super(InstanceSpec, cls).from_dict(data, where)
        if not spec.name:
            raise errors.WrongInput(f"{where or 'the instance spec'} has no name")
        return spec


def plain(value: Any) -> Any:
    """``value`` with every structure in it turned into its dict (for the generic path)."""
    if isinstance(value, Wire):
        return value.to_dict()
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value
