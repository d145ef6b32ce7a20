"""The exception tree of cardume, and the one place that maps errors to exit codes and HTTP.

    CardumeError                     base: a one-line message for operators, a stable code
    ├── WrongInput                   wrong_input: a bad name, value or option
    ├── WrongState                   wrong_state: valid input, but not now (node offline, ...)
    ├── UnknownEntity                unknown_entity: no such node, group, job, instance
    ├── AlreadyExists                already_exists: the name is taken
    ├── InsufficientResources        insufficient_resources: not enough memory, disk, ports
    ├── ResolverError                resolver_error: a name does not resolve
    ├── EnvironmentProblem           environment_error: a daemon, file or command is missing
    │   ├── NotCluster               no cluster is initialised here (exit code 5)
    │   ├── MasterUnreachable        the master daemon does not answer
    │   └── RpcError                 a node daemon failed or could not be reached
    ├── ExecError                    execution failed after the prerequisites passed
    ├── JobCanceled                  the job was canceled
    └── InternalError                internal_error: a bug; the message says where

Codes are Ganeti's (``wrong_input``, ``wrong_state`` ...), so scripts that match on them keep
working. Every error travels as ``{"code", "message", "hint"}`` across the socket and RPC.
"""

from __future__ import annotations

TYPE_CHECKING = False  # `typing` costs every CLI start ~3 ms; only mypy needs it here
if TYPE_CHECKING:
    from typing import Any


EXIT_SUCCESS = 0
EXIT_FAILURE = 1
EXIT_NOTCLUSTER = 5
EXIT_NOTMASTER = 11
EXIT_CONFIRMATION = 13


class CardumeError(Exception):
    """Base of every error cardume reports to an operator."""

    code = "internal_error"
    exit_code = EXIT_FAILURE
    http_status = 500

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message} ({self.hint})"
        return self.message

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code, "type": type(self).__name__,
                "message": self.message, "hint": self.hint}


class WrongInput(CardumeError):
    code = "wrong_input"
    http_status = 400


class WrongState(CardumeError):
    code = "wrong_state"
    http_status = 409


class UnknownEntity(CardumeError):
    code = "unknown_entity"
    http_status = 404


class AlreadyExists(CardumeError):
    code = "already_exists"
    http_status = 409


class InsufficientResources(CardumeError):
    code = "insufficient_resources"
    http_status = 503


class ResolverError(CardumeError):
    code = "resolver_error"
    http_status = 400


class EnvironmentProblem(CardumeError):
    code = "environment_error"
    http_status = 502


class NotCluster(EnvironmentProblem):
    exit_code = EXIT_NOTCLUSTER


class MasterUnreachable(EnvironmentProblem):
    exit_code = EXIT_NOTMASTER


class RpcError(EnvironmentProblem):
    """A node daemon could not be reached, refused the call, or the call failed there."""

    def __init__(self, message: str, hint: str | None = None, node: str | None = None) -> None:
        super().__init__(message, hint)
        self.node = node


class ExecError(CardumeError):
    code = "exec_error"


class JobCanceled(CardumeError):
    code = "canceled"


class InternalError(CardumeError):
    code = "internal_error"


_BY_TYPE: dict[str, type[CardumeError]] = {
    cls.__name__: cls
    for cls in (CardumeError, WrongInput, WrongState, UnknownEntity, AlreadyExists,
                InsufficientResources, ResolverError, EnvironmentProblem, NotCluster,
                MasterUnreachable, RpcError, ExecError, JobCanceled, InternalError)
}


def from_dict(data: dict[str, Any]) -> CardumeError:
    """Rebuild an error sent over the socket or RPC as its own class."""
    cls = _BY_TYPE.get(str(data.get("type")), CardumeError)
    return cls(str(data.get("message", "unknown error")), data.get("hint"))
