"""Volume names: what LVM accepts as a volume group or logical volume name.

The master checks the names a request carries (``--disk N:vg=..``, ``metavg=``,
``adopt=``, the cluster's volume group) before it sends any node call, and the node's
``plain`` storage checks every name again before a command runs, with the same words.
"""

from __future__ import annotations

import re
from typing import Any

from cardume import errors

NAME_MAX = 127
"""The longest VG or LV name accepted."""
_NAME_RE = re.compile(r"^[A-Za-z0-9+_.][A-Za-z0-9+_.-]*$")
# LVM refuses LV names that look like its internal volumes (lvm2 lib/misc/lvm-string.c).
_RESERVED_PREFIXES = ("snapshot", "pvmove")
_RESERVED_INFIXES = ("_cdata", "_cmeta", "_corig", "_cpool", "_cvol", "_iorig", "_mimage",
                     "_mlog", "_pmspare", "_rimage", "_rmeta", "_tdata", "_tmeta", "_vdata",
                     "_vorigin", "_wcorig")
LOGICAL_VOLUME = "logical volume"
VOLUME_GROUP = "volume group"


def check_name(name: Any, what: str) -> str:
    """A VG or LV name (``what`` says which, for the message), or WrongInput saying what
    is wrong with it."""
    if not isinstance(name, str) or not name:
        raise errors.WrongInput(f"invalid {what} name {name!r}: empty or not a string")
    if name in (".", ".."):
        raise errors.WrongInput(f"invalid {what} name '{name}'")
    if len(name) > NAME_MAX:
        raise errors.WrongInput(f"invalid {what} name '{name[:20]}...': longer than "
                                f"{NAME_MAX} characters")
    if not _NAME_RE.match(name):
        raise errors.WrongInput(f"invalid {what} name {name!r}: only letters, digits and "
                                "'+_.-' are allowed, and it must not start with '-'")
    return name


def check_lv_name(name: Any) -> str:
    """An LV name: a valid name that LVM does not keep for its internal volumes."""
    check_name(name, LOGICAL_VOLUME)
    if name.startswith(_RESERVED_PREFIXES) or any(s in name for s in _RESERVED_INFIXES):
        raise errors.WrongInput(f"invalid logical volume name '{name}': LVM reserves names "
                                "like it for internal volumes")
    return str(name)


def check_lvm_name(name: Any, what: str) -> str:
    """``check_lv_name`` for a logical volume, ``check_name`` for anything else."""
    if what == LOGICAL_VOLUME:
        return check_lv_name(name)
    return check_name(name, what)
