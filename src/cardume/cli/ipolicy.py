"""The ``--ipolicy-*`` options of gnt-cluster init/modify and gnt-group add/modify, in
Ganeti 3.0's syntax, parsed into the opcode's ``ipolicy`` change set.

- ``--ipolicy-bounds-specs min:memory-size=128,cpu-count=1,...,/max:memory-size=4g,...``:
  one ``min``/``max`` pair, the two halves separated by ``/``; several pairs by ``//``;
- ``--ipolicy-std-specs memory-size=128,cpu-count=1`` (the cluster's only; the keys given
  change, the others stay);
- ``--ipolicy-disk-templates file,diskless``; ``--ipolicy-vcpu-ratio 4``;
  ``--ipolicy-spindle-ratio 32``.

On a group, ``default`` as a value gives the key back to the cluster's (the cluster
refuses it). Sizes may carry
a unit (``4g``). The master checks the whole policy again (min <= std <= max, templates
enabled), so RAPI bodies meet the same rules. Only leaf modules are imported: the CLI
starts fast.
"""

from __future__ import annotations

from cardume import errors

TYPE_CHECKING = False  # `typing` costs every CLI start ~3 ms; only mypy needs it here
if TYPE_CHECKING:
    import argparse
    from typing import Any

BOUNDS_OPT = "--ipolicy-bounds-specs"
STD_OPT = "--ipolicy-std-specs"
TEMPLATES_OPT = "--ipolicy-disk-templates"
# (rules.ipolicy's key names: that module loads dataclasses, ~15 ms of every gnt-cluster
# start, so it is imported only where a policy option is parsed)
VCPU_RATIO, SPINDLE_RATIO = "vcpu-ratio", "spindle-ratio"
RATIO_OPTS = {VCPU_RATIO: "--ipolicy-vcpu-ratio", SPINDLE_RATIO: "--ipolicy-spindle-ratio"}


def add_options(parser: Any, std: bool) -> None:
    """The options on ``parser`` (``std``: the cluster's commands, which set the std specs)."""
    parser.add_argument(BOUNDS_OPT, dest="ipolicy_bounds_specs", metavar="SPECS",
                        help="instance specs limits: min:k=v,.../max:k=v,...[//min:.../max:...]")
    if std:
        parser.add_argument(STD_OPT, dest="ipolicy_std_specs", metavar="SPECS",
                            help="standard instance specs: k=v,...")
    parser.add_argument(TEMPLATES_OPT, dest="ipolicy_disk_templates", metavar="TEMPLATES",
                        help="comma-separated disk templates instances may use")
    parser.add_argument(RATIO_OPTS[VCPU_RATIO], dest="ipolicy_vcpu_ratio",
                        metavar="RATIO", help="the maximum allowed vcpu-to-cpu ratio")
    parser.add_argument(RATIO_OPTS[SPINDLE_RATIO], dest="ipolicy_spindle_ratio",
                        metavar="RATIO", help="the maximum allowed instances to spindle ratio")


def from_args(args: argparse.Namespace) -> dict[str, Any] | None:
    """The opcode's ``ipolicy`` from the parsed options; None when none was given.
    ``default`` resets a group's key (the cluster refuses it: it has nothing to inherit)."""
    from cardume.rules import ipolicy
    changes: dict[str, Any] = {}
    bounds = getattr(args, "ipolicy_bounds_specs", None)
    if bounds is not None:
        changes[ipolicy.MINMAX] = _default(bounds) or parse_bounds(bounds)
    std = getattr(args, "ipolicy_std_specs", None)
    if std is not None:
        changes[ipolicy.STD] = parse_specs(std, STD_OPT)
    templates = getattr(args, "ipolicy_disk_templates", None)
    if templates is not None:
        changes[ipolicy.DISK_TEMPLATES] = (_default(templates)
                                           or parse_templates(templates))
    for key, option in RATIO_OPTS.items():
        value = getattr(args, "ipolicy_" + key.replace("-", "_"), None)
        if value is not None:
            changes[key] = _default(value) or parse_ratio(value, option)
    if not changes:
        return None
    # "default" became the marker the opcode carries for "inherit": None
    return {key: None if value is _INHERIT else value for key, value in changes.items()}


_INHERIT: Any = object()


def _default(text: str) -> Any:
    from cardume.rules import ipolicy
    return _INHERIT if text.strip() == ipolicy.DEFAULT else None


def parse_specs(text: str, option: str, where: str = "") -> dict[str, int]:
    """``memory-size=128,cpu-count=1``: each key once, known, a whole value."""
    from cardume.cli.params import split_escaped
    from cardume.rules import ipolicy
    where = where or f"{option} {text}"
    specs: dict[str, int] = {}
    for item in split_escaped(text):
        if not item:
            continue  # Ganeti's own examples end a spec with a comma: "...,/max:..."
        key, sep, value = item.partition("=")
        key = key.strip()
        if key not in ipolicy.SPEC_KEYS:
            raise errors.WrongInput(f"unknown spec '{key}' in {where}: expected "
                                    f"{', '.join(ipolicy.SPEC_KEYS)}")
        if key in specs:
            raise errors.WrongInput(f"duplicate spec '{key}' in {where}")
        if not sep:
            raise errors.WrongInput(f"spec '{key}' in {where} has no value: expected "
                                    f"{key}=NUMBER")
        specs[key] = ipolicy.spec_value(key, value.strip(), f"{option} value")
    if not specs:
        raise errors.WrongInput(f"no specs in {where}: expected key=value,...")
    return specs


def parse_bounds(text: str) -> list[dict[str, dict[str, int]]]:
    """``min:...,/max:...[//min:.../max:...]`` into the policy's minmax list (each pair
    complete and min <= max, checked here as the master checks it again)."""
    from cardume.rules import ipolicy
    pairs: list[dict[str, dict[str, int]]] = []
    for number, chunk in enumerate(text.split("//")):
        pair: dict[str, dict[str, int]] = {}
        for part in chunk.split("/"):
            if not part.strip():
                continue
            name, sep, values = part.partition(":")
            name = name.strip()
            if not sep or name not in ipolicy.BOUNDS:
                raise errors.WrongInput(
                    f"invalid key '{name}' in {BOUNDS_OPT} {text}: expected "
                    "min:k=v,.../max:k=v,... (pairs separated by //)")
            if name in pair:
                raise errors.WrongInput(f"duplicate '{name}' in pair {number} of "
                                        f"{BOUNDS_OPT} {text}")
            pair[name] = parse_specs(values, BOUNDS_OPT, f"the {name} specs of {BOUNDS_OPT}")
        pairs.append(pair)
    return ipolicy.check_minmax(pairs)


def parse_templates(text: str) -> list[str]:
    from cardume.cli.params import parse_names_list
    from cardume.rules import ipolicy
    names = parse_names_list(text)
    if not names:
        raise errors.WrongInput(f"{TEMPLATES_OPT} needs at least one disk template")
    return ipolicy.check_templates(names)


def parse_ratio(text: str, option: str) -> float:
    from cardume.rules import ipolicy
    try:
        return ipolicy.check_ratio(option.removeprefix("--ipolicy-"), text.strip())
    except errors.WrongInput:
        raise errors.WrongInput(f"invalid {option} {text!r}: expected a number above 0") \
            from None
