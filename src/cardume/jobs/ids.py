"""Job ids as clients give them: one check for the CLI, the master's socket and queries."""

from __future__ import annotations

from cardume import errors

MAX_JOB_ID = 2**53
"""Job ids are JSON numbers: above this, other clients (JavaScript, RAPI) lose precision."""


def parse(value: object) -> int:
    """A job id from an integer or its digits; anything else is refused naming the value."""
    if isinstance(value, str) and value.isascii() and value.isdigit():
        number: object = int(value)
    else:
        number = value
    if not isinstance(number, int) or isinstance(number, bool) or \
            not 0 <= number <= MAX_JOB_ID:
        shown = f"'{value}'" if isinstance(value, str) else repr(value)
        raise errors.WrongInput(f"invalid job id {shown}: expected a number from 0 to "
                                f"{MAX_JOB_ID}")
    return number
