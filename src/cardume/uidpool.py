"""The cluster's user-id pool: ranges of uids the kvm hypervisor runs instances as when
their ``security_model`` is ``pool`` (each running QEMU gets a uid of its own, so one
escaped guest can't touch another's process or files).

On the command line (``gnt-cluster init|modify --uid-pool``, ``--add-uids``,
``--remove-uids``) a pool is Ganeti's text form: comma-separated uids and ``LOW-HIGH``
ranges, e.g. ``4000-4099,5000``. In the configuration it is a sorted list of ``[low, high]``
pairs with no overlaps.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from cardume import errors

# uid 0 is root; above 2**31-1 some tools treat uids as signed
MIN_UID = 1
MAX_UID = 2**31 - 1

Ranges = list[list[int]]


def _uid(text: str, whole: str) -> int:
    try:
        value = int(text.strip())
    except ValueError:
        raise errors.WrongInput(f"invalid uid {text.strip()!r} in uid pool {whole!r}: "
                                "expected uids and LOW-HIGH ranges, e.g. 4000-4099,5000"
                                ) from None
    if not MIN_UID <= value <= MAX_UID:
        raise errors.WrongInput(f"uid {value} in uid pool {whole!r} is out of range: expected "
                                f"{MIN_UID} to {MAX_UID}")
    return value


def parse(text: str) -> Ranges:
    """Ranges from Ganeti's text form; an empty text is an empty pool."""
    ranges: Ranges = []
    for item in text.split(","):
        if not item.strip():
            continue
        low_text, sep, high_text = item.partition("-")
        low = _uid(low_text, text)
        high = _uid(high_text, text) if sep else low
        if high < low:
            raise errors.WrongInput(f"uid range {item.strip()!r} in uid pool {text!r} ends "
                                    "before it starts")
        ranges.append([low, high])
    return normalize(ranges)


def check(ranges: object) -> Ranges:
    """Ranges as an opcode carries them, checked and normalized."""
    if not isinstance(ranges, list) or not all(
            isinstance(r, (list, tuple)) and len(r) == 2
            and all(isinstance(v, int) and not isinstance(v, bool) for v in r)
            for r in ranges):
        raise errors.WrongInput(f"invalid uid pool {ranges!r}: expected [[low, high], ...]")
    text = format_pool(list(map(list, ranges)))
    for low, high in ranges:
        if not MIN_UID <= low <= high <= MAX_UID:
            raise errors.WrongInput(f"invalid uid range {low}-{high} in uid pool {text!r}: "
                                    f"expected {MIN_UID} <= low <= high <= {MAX_UID}")
    return normalize([list(r) for r in ranges])


def normalize(ranges: Iterable[list[int]]) -> Ranges:
    """Sorted, overlapping and touching ranges merged."""
    merged: Ranges = []
    for low, high in sorted(ranges):
        if merged and low <= merged[-1][1] + 1:
            merged[-1][1] = max(merged[-1][1], high)
        else:
            merged.append([low, high])
    return merged


def add(pool: Ranges, more: Ranges) -> Ranges:
    return normalize([*pool, *more])


def remove(pool: Ranges, less: Ranges) -> Ranges:
    """``pool`` without the uids of ``less`` (ranges split where needed)."""
    result: Ranges = []
    for low, high in pool:
        pieces = [[low, high]]
        for cut_low, cut_high in less:
            next_pieces: Ranges = []
            for p_low, p_high in pieces:
                if cut_high < p_low or cut_low > p_high:
                    next_pieces.append([p_low, p_high])
                    continue
                if p_low < cut_low:
                    next_pieces.append([p_low, cut_low - 1])
                if cut_high < p_high:
                    next_pieces.append([cut_high + 1, p_high])
            pieces = next_pieces
        result.extend(pieces)
    return normalize(result)


def format_pool(ranges: Ranges) -> str:
    return ", ".join(str(low) if low == high else f"{low}-{high}" for low, high in ranges)


def uids(ranges: Ranges) -> Iterator[int]:
    for low, high in ranges:
        yield from range(low, high + 1)
