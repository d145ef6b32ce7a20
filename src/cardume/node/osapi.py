"""Ganeti OS definitions (OS API version 20, also 15, 10 and 5), on the node.

An OS definition is a directory in the OS search path (``/srv/ganeti/os``, ...) named after
the OS. It holds ``ganeti_api_version`` (the API versions it speaks, one per line), the
scripts ``create``, ``import``, ``export`` and ``rename`` (executables), and, from API 20 on,
``verify`` and ``parameters.list`` (``NAME description`` per line); from API 15 on an optional
``variants.list`` (one variant per line). Instances name their OS as ``name+variant``
(``debootstrap+default``). The validity rules are Ganeti's (lib/backend.py
``_TryOSFromDisk``), with two differences: API version 5 counts as supported (its scripts
get the same environment as API 10), and an OS with only an untrusted create script is
invalid here (those need an install helper VM, which cardume does not have).

Scripts run with an argument list only, in the OS directory, with a clean environment
built here (Ganeti's ``OSEnvironment``), their output going to a log file of the node;
a failure raises ExecError whose hint carries the log's last lines. Image files reach
scripts as loop devices (node/storage/loop.py), released when the script ends.
"""

from __future__ import annotations

import datetime
import os
import re
import signal
import stat
import subprocess
import tempfile
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from typing import IO, Any

from cardume import errors
from cardume.node.cmd import kill_group, wait_group
from cardume.node.storage import loop

SUPPORTED_API_VERSIONS = frozenset({20, 15, 10, 5})
API_V15 = 15
API_V20 = 20
DEFAULT_SEARCH_PATH = ["/srv/ganeti/os", "/usr/local/lib/ganeti/os", "/usr/lib/ganeti/os",
                       "/usr/share/ganeti/os"]
SCRIPT_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"
VARIANT_DELIM = "+"

API_FILE = "ganeti_api_version"
VARIANTS_FILE = "variants.list"
PARAMETERS_FILE = "parameters.list"
SCRIPT_CREATE = "create"
SCRIPT_CREATE_UNTRUSTED = "create_untrusted"
SCRIPT_IMPORT = "import"
SCRIPT_EXPORT = "export"
SCRIPT_RENAME = "rename"
SCRIPT_VERIFY = "verify"
VERIFY_PARAMETERS = "parameters"  # the check `verify` is asked for

# Script time limits stay below the RPC timeout of their call (calls.py), so the node
# reports a hung script itself instead of the master giving up on the node.
CREATE_TIMEOUT = 4 * 3600.0 - 300.0
RENAME_TIMEOUT = 1800.0 - 60.0
VERIFY_TIMEOUT = 45.0
LOG_TAIL_LINES = 20
_TAIL_BYTES = 64 * 1024
_PARAM_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")


@dataclass(frozen=True)
class OSDefinition:
    """A valid OS definition found on this node."""

    name: str
    path: str
    api_versions: tuple[int, ...]
    variants: tuple[str, ...]
    parameters: tuple[tuple[str, str], ...]
    scripts: dict[str, str]  # script name -> absolute path

    @property
    def api_version(self) -> int:
        """The newest API version both this OS and cardume speak."""
        return max(SUPPORTED_API_VERSIONS.intersection(self.api_versions))

    @property
    def parameter_names(self) -> list[str]:
        return [name for name, _doc in self.parameters]

    def script(self, name: str) -> str:
        try:
            return self.scripts[name]
        except KeyError:
            raise errors.WrongInput(f"OS {self.name} has no '{name}' script") from None


class InvalidOS(Exception):
    """Why a directory of the search path is not a valid OS definition."""


# --- names and the search path ----------------------------------------------------------


def split_name(full: str) -> tuple[str, str]:
    """``"debootstrap+default"`` -> ``("debootstrap", "default")``; no variant -> ``""``."""
    name, _, variant = str(full).partition(VARIANT_DELIM)
    return name, variant


def check_os_name(name: str) -> None:
    if (not name or "/" in name or "\0" in name or name.startswith(".")
            or name != name.strip()):
        raise errors.WrongInput(f"invalid OS name '{name}'")


def search_path(ssconf: dict[str, Any]) -> list[str]:
    """The cluster's OS search path (ssconf "os_search_path"), else Ganeti's default."""
    configured = ssconf.get("os_search_path")
    if isinstance(configured, str):
        configured = [p for p in configured.split(":") if p]
    if configured:
        return [str(p) for p in configured]
    return list(DEFAULT_SEARCH_PATH)


# --- reading definitions ------------------------------------------------------------------


def _read_lines(path: str) -> list[str]:
    """Non-empty lines without comments, stripped."""
    with open(path, encoding="utf-8", errors="replace") as handle:
        lines = [line.strip() for line in handle]
    return [line for line in lines if line and not line.startswith("#")]


def _regular(path: str, what: str, required: bool) -> bool:
    """Whether path is a regular file; raise InvalidOS when it is required and is not."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        if required:
            raise InvalidOS(f"missing {what}") from None
        return False
    except OSError as err:
        raise InvalidOS(f"can't read {what}: {err.strerror}") from None
    if not stat.S_ISREG(st.st_mode):
        raise InvalidOS(f"{what} is not a regular file")
    return True


def api_versions(os_dir: str) -> list[int]:
    """The versions ``ganeti_api_version`` lists (newest first by convention)."""
    path = os.path.join(os_dir, API_FILE)
    _regular(path, f"file '{API_FILE}'", required=True)
    try:
        lines = _read_lines(path)
    except OSError as err:
        raise InvalidOS(f"can't read '{API_FILE}': {err.strerror}") from None
    versions = []
    for line in lines:
        try:
            versions.append(int(line))
        except ValueError:
            raise InvalidOS(f"'{API_FILE}' has a line that is not a version: "
                            f"'{line[:40]}'") from None
    if not versions:
        raise InvalidOS(f"'{API_FILE}' lists no API version")
    return versions


def load(os_dir: str, name: str | None = None) -> OSDefinition:
    """The OS definition in os_dir; raises InvalidOS saying why it is not valid."""
    name = name or os.path.basename(os_dir.rstrip("/"))
    if not os.path.isdir(os_dir):
        raise InvalidOS("not a directory")
    versions = api_versions(os_dir)
    if not SUPPORTED_API_VERSIONS.intersection(versions):
        supported = ", ".join(str(v) for v in sorted(SUPPORTED_API_VERSIONS, reverse=True))
        raise InvalidOS(f"unsupported API versions {versions} (cardume speaks {supported})")
    newest = max(versions)
    required = [SCRIPT_IMPORT, SCRIPT_EXPORT, SCRIPT_RENAME]
    if newest >= API_V20:
        required.append(SCRIPT_VERIFY)
    scripts: dict[str, str] = {}
    for script in [SCRIPT_CREATE, SCRIPT_CREATE_UNTRUSTED, *required]:
        path = os.path.join(os_dir, script)
        must = script in required
        if not _regular(path, f"script '{script}'", required=must):
            continue
        if not os.stat(path).st_mode & stat.S_IXUSR:
            raise InvalidOS(f"script '{script}' is not executable")
        scripts[script] = path
    if SCRIPT_CREATE not in scripts:
        if SCRIPT_CREATE_UNTRUSTED in scripts:
            raise InvalidOS("it has only an untrusted create script ('create_untrusted'), "
                            "which needs an install helper VM; cardume has none")
        raise InvalidOS(f"missing script '{SCRIPT_CREATE}'")
    variants: list[str] = []
    if newest >= API_V15:
        path = os.path.join(os_dir, VARIANTS_FILE)
        if _regular(path, f"file '{VARIANTS_FILE}'", required=False):
            try:
                variants = _read_lines(path)
            except OSError as err:
                raise InvalidOS(f"can't read '{VARIANTS_FILE}': {err.strerror}") from None
    parameters: list[tuple[str, str]] = []
    if newest >= API_V20:
        path = os.path.join(os_dir, PARAMETERS_FILE)
        _regular(path, f"file '{PARAMETERS_FILE}' (API version 20 needs it)", required=True)
        try:
            for line in _read_lines(path):
                parts = line.split(None, 1)
                parameters.append((parts[0], parts[1].strip() if len(parts) > 1 else ""))
        except OSError as err:
            raise InvalidOS(f"can't read '{PARAMETERS_FILE}': {err.strerror}") from None
    return OSDefinition(name=name, path=os_dir, api_versions=tuple(versions),
                        variants=tuple(dict.fromkeys(variants)),
                        parameters=tuple(parameters), scripts=scripts)


def diagnose(search: Iterable[str]) -> list[dict[str, Any]]:
    """One entry per visible entry of every search path directory, valid or not."""
    result: list[dict[str, Any]] = []
    for top in search:
        try:
            names = sorted(n for n in os.listdir(top) if not n.startswith("."))
        except OSError:
            continue  # a missing search directory is normal
        for name in names:
            path = os.path.join(top, name)
            entry: dict[str, Any] = {"name": name, "path": path, "status": False,
                                     "diagnose": "", "variants": [], "parameters": [],
                                     "api_versions": []}
            try:
                found = load(path, name)
            except InvalidOS as err:
                entry["diagnose"] = str(err)
            else:
                entry.update(status=True, variants=list(found.variants),
                             parameters=[list(p) for p in found.parameters],
                             api_versions=list(found.api_versions))
            result.append(entry)
    return result


def find(full_name: str, search: Iterable[str]) -> OSDefinition:
    """The OS an instance names (variant ignored), from the first search directory that has
    it, as Ganeti looks it up; WrongInput when it is missing or invalid."""
    name, _variant = split_name(full_name)
    check_os_name(name)
    search = list(search)
    for top in search:
        path = os.path.join(top, name)
        if os.path.isdir(path):
            try:
                return load(path, name)
            except InvalidOS as err:
                raise errors.WrongInput(f"OS '{name}' is not valid on this node: {err}",
                                        f"see {path}") from None
    raise errors.WrongInput(f"OS '{name}' is not installed on this node",
                            f"searched {':'.join(search)}")


def check_variant(osdef: OSDefinition, full_name: str) -> None:
    """Ganeti's rule: an OS with variants needs one of them named; one without, none."""
    variant = split_name(full_name)[1]
    if not osdef.variants:
        if variant:
            raise errors.WrongInput(f"OS '{osdef.name}' does not support variants "
                                    f"('{variant}' passed)")
        return
    if not variant:
        raise errors.WrongInput(f"OS name '{full_name}' must include a variant",
                                f"one of: {', '.join(osdef.variants)}")
    if variant not in osdef.variants:
        raise errors.WrongInput(f"OS '{osdef.name}' does not support variant '{variant}'",
                                f"supported variants: {', '.join(osdef.variants)}")


def script_variant(osdef: OSDefinition, full_name: str) -> str:
    """OS_VARIANT for a script run: the named variant, else the first listed (Ganeti)."""
    if osdef.api_version < API_V15 or not osdef.variants:
        return ""
    variant = split_name(full_name)[1]
    if not variant:
        return osdef.variants[0]
    if variant not in osdef.variants:
        raise errors.WrongInput(f"OS '{osdef.name}' does not support variant '{variant}'",
                                f"supported variants: {', '.join(osdef.variants)}")
    return variant


def check_parameters(osdef: OSDefinition, names: Iterable[str]) -> None:
    unknown = sorted(set(names) - set(osdef.parameter_names))
    if unknown:
        known = ", ".join(osdef.parameter_names) or "none"
        raise errors.WrongInput(f"OS '{osdef.name}' does not support the parameter"
                                f"{'s' if len(unknown) > 1 else ''} {', '.join(unknown)}",
                                f"its parameters: {known}")


# --- environments -----------------------------------------------------------------------


def core_env(osdef: OSDefinition, full_name: str, osparams: dict[str, Any],
             debug: int = 0) -> dict[str, str]:
    """What every script gets (Ganeti's OSCoreEnv); the rest of the environment is empty."""
    env = {"OS_API_VERSION": str(osdef.api_version), "OS_NAME": osdef.name,
           "OS_VARIANT": script_variant(osdef, full_name), "DEBUG_LEVEL": str(int(debug)),
           "PATH": SCRIPT_PATH}
    for pname, value in osparams.items():
        if not _PARAM_NAME.fullmatch(str(pname)):
            raise errors.WrongInput(f"invalid OS parameter name {str(pname)[:40]!r}")
        env["OSP_" + str(pname).upper().replace("-", "_")] = _text(value)
    return env


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def _nic_param(nic: dict[str, Any], key: str) -> Any:
    if key in nic:
        return nic[key]
    return (nic.get("nicparams") or {}).get(key)


def instance_env(osdef: OSDefinition, spec: dict[str, Any], disk_paths: list[str], *,
                 node_name: str = "") -> dict[str, str]:
    """The environment of an instance's script (Ganeti's OSEnvironment).

    ``disk_paths`` are the local devices of the instance's disks, in order (loop devices
    for image files); a disk whose path is a block device gets backend type ``block``.
    """
    osparams = dict(spec.get("osparams") or {})
    osparams.update(spec.get("osparams_private") or {})
    env = core_env(osdef, str(spec.get("os", "")), osparams,
                   int(spec.get("debug_level") or 0))
    hvparams: dict[str, Any] = dict(spec.get("hvparams") or {})
    beparams: dict[str, Any] = dict(spec.get("beparams") or {})
    disks: list[dict[str, Any]] = list(spec.get("disks") or [])
    nics: list[dict[str, Any]] = list(spec.get("nics") or [])
    env.update({
        "INSTANCE_NAME": str(spec["name"]), "INSTANCE_OS": str(spec.get("os", "")),
        "INSTANCE_UUID": _text(spec.get("uuid")),
        "INSTANCE_PRIMARY_NODE": _text(spec.get("primary_node") or node_name),
        "INSTANCE_SECONDARY_NODES": " ".join(spec.get("secondary_nodes") or []),
        "HYPERVISOR": _text(spec.get("hypervisor")),
        "DISK_COUNT": str(len(disks)), "NIC_COUNT": str(len(nics)),
    })
    if len(disk_paths) != len(disks):
        raise errors.InternalError(f"{len(disks)} disks but {len(disk_paths)} device paths")
    for idx, (disk, path) in enumerate(zip(disks, disk_paths, strict=True)):
        prefix = f"DISK_{idx}_"
        env[prefix + "ACCESS"] = _text(disk.get("mode") or "rw")
        env[prefix + "UUID"] = _text(disk.get("uuid"))
        env[prefix + "SIZE"] = _text(disk.get("size"))
        if path:
            env[prefix + "PATH"] = path
        if disk.get("name"):
            env[prefix + "NAME"] = str(disk["name"])
        if "disk_type" in hvparams:
            env[prefix + "FRONTEND_TYPE"] = _text(hvparams["disk_type"])
        if _is_block(path):
            env[prefix + "BACKEND_TYPE"] = "block"
        else:
            driver = (disk.get("logical_id") or ["loop"])[0]
            env[prefix + "BACKEND_TYPE"] = f"file:{driver}"
    for idx, nic in enumerate(nics):
        prefix = f"NIC_{idx}_"
        mode = _text(_nic_param(nic, "mode"))
        link = _text(_nic_param(nic, "link"))
        env[prefix + "MAC"] = _text(nic.get("mac"))
        env[prefix + "UUID"] = _text(nic.get("uuid"))
        env[prefix + "MODE"] = mode
        if nic.get("name"):
            env[prefix + "NAME"] = str(nic["name"])
        if nic.get("ip"):
            env[prefix + "IP"] = str(nic["ip"])
        if mode == "bridged":
            env[prefix + "BRIDGE"] = link
        if link:
            env[prefix + "LINK"] = link
        if nic.get("network"):
            env[prefix + "NETWORK_NAME"] = str(nic["network"])
        if "nic_type" in hvparams:
            env[prefix + "FRONTEND_TYPE"] = _text(hvparams["nic_type"])
    for source, kind in ((beparams, "BE"), (hvparams, "HV")):
        for key, value in source.items():
            env[f"INSTANCE_{kind}_{key}"] = str(value)
    return env


def _is_block(path: str) -> bool:
    try:
        return stat.S_ISBLK(os.stat(path).st_mode)
    except OSError:
        return False


# --- running scripts --------------------------------------------------------------------

_running: set[subprocess.Popen[bytes]] = set()
_running_lock = threading.Lock()


def terminate_all() -> int:
    """Kill every script still running (the node daemon is stopping); returns how many.
    (A node daemon that is killed can't do this: children.py's sentinel does it then.)"""
    with _running_lock:
        procs = list(_running)
    for proc in procs:
        kill_group(proc, signal.SIGKILL)
    return len(procs)


@dataclass
class ScriptResult:
    returncode: int | None  # None: killed after the time limit
    timeout: float

    @property
    def failed(self) -> bool:
        return self.returncode != 0

    @property
    def reason(self) -> str:
        if self.returncode is None:
            return f"timed out after {self.timeout:g} s"
        if self.returncode < 0:
            try:
                name = signal.Signals(-self.returncode).name
            except ValueError:
                name = str(-self.returncode)
            return f"killed by signal {name}"
        return f"exited with exit code {self.returncode}"


def execute(argv: list[str], *, cwd: str, env: dict[str, str], output: IO[bytes],
            timeout: float, stdin: int | IO[bytes] = subprocess.DEVNULL) -> ScriptResult:
    """Run argv (no shell) in its own process group; stdout and stderr go to output.

    After ``timeout`` seconds the whole group gets SIGTERM, then SIGKILL. The group is
    recorded while the script runs (children.py), so it dies with the node daemon.
    """
    try:
        proc = subprocess.Popen(argv, cwd=cwd, env=env, stdin=stdin, stdout=output,
                                stderr=subprocess.STDOUT, close_fds=True,
                                start_new_session=True)
    except OSError as err:
        raise errors.ExecError(f"can't run {argv[0]}: {err.strerror}") from None
    except ValueError as err:  # a NUL byte or a bad name in the environment
        raise errors.WrongInput(f"can't run {argv[0]}: {err}") from None
    with _running_lock:
        _running.add(proc)
    try:
        # it dies with the node daemon, even a killed one; what it left behind dies with it
        code = wait_group(proc, timeout)
    finally:
        with _running_lock:
            _running.discard(proc)
    return ScriptResult(code, timeout)


def tail(path: str, lines: int = LOG_TAIL_LINES) -> list[str]:
    """The last lines of a (log) file."""
    try:
        with open(path, "rb") as handle:
            size = handle.seek(0, os.SEEK_END)
            handle.seek(max(0, size - _TAIL_BYTES))
            data = handle.read()
    except OSError:
        return []
    text = data.decode("utf-8", errors="replace")
    return [line.rstrip() for line in text.splitlines()][-lines:]


def log_path(log_dir: str, script: str, instance: str) -> str:
    """<log dir>/<script>-<instance>-<timestamp>.log (created with its directory)."""
    os.makedirs(log_dir, mode=0o750, exist_ok=True)
    safe = instance.replace("/", "_").replace("\0", "_")
    stamp = datetime.datetime.now().strftime("%Y-%m-%d_%H_%M_%S.%f")
    return os.path.join(log_dir, f"{script}-{safe}-{stamp}.log")


def run_script(osdef: OSDefinition, script: str, env: dict[str, str], log_file: str, *,
               timeout: float, what: str, args: list[str] | None = None) -> None:
    """Run one of the OS's scripts, appending its output to log_file; ExecError on failure
    with the log's last lines in the hint."""
    argv = [osdef.script(script), *(args or [])]
    with open(log_file, "ab") as output:
        result = execute(argv, cwd=osdef.path, env=env, output=output, timeout=timeout)
    if result.failed:
        lines = tail(log_file)
        if lines:
            hint = f"last lines of {log_file}:\n" + "\n".join(lines)
        else:
            hint = f"the script printed nothing (log file {log_file})"
        raise errors.ExecError(f"OS {script} script failed for {what} ({result.reason})", hint)


def run_instance_script(osdef: OSDefinition, spec: dict[str, Any], script: str,
                        disk_paths: list[str], *, log_dir: str, timeout: float,
                        node_name: str = "", extra_env: dict[str, str] | None = None) -> str:
    """Run an instance's OS script with its disks exposed as block devices; returns the
    log file. Loop devices are released whatever happens."""
    name = str(spec["name"])
    logfile = log_path(log_dir, script, name)
    with loop.exposed(disk_paths) as devices:
        env = instance_env(osdef, spec, devices, node_name=node_name)
        env.update(extra_env or {})
        run_script(osdef, script, env, logfile, timeout=timeout, what=f"instance {name}")
    return logfile


def install(spec: dict[str, Any], search: list[str], disk_paths: list[str], *,
            log_dir: str, reinstall: bool = False, node_name: str = "",
            timeout: float = CREATE_TIMEOUT) -> str:
    """Run the OS create script of an instance (instance_os_add); returns the log file."""
    osdef = find(str(spec.get("os", "")), search)
    script_variant(osdef, str(spec.get("os", "")))  # refuses an unknown variant
    extra = {"INSTANCE_REINSTALL": "1"} if reinstall else {}
    return run_instance_script(osdef, spec, SCRIPT_CREATE, disk_paths, log_dir=log_dir,
                               timeout=timeout, node_name=node_name, extra_env=extra)


def rename(spec: dict[str, Any], old_name: str, search: list[str], disk_paths: list[str], *,
           log_dir: str, node_name: str = "", timeout: float = RENAME_TIMEOUT) -> str:
    """Run the OS rename script (instance_os_rename); returns the log file."""
    osdef = find(str(spec.get("os", "")), search)
    script_variant(osdef, str(spec.get("os", "")))
    return run_instance_script(osdef, spec, SCRIPT_RENAME, disk_paths, log_dir=log_dir,
                               timeout=timeout, node_name=node_name,
                               extra_env={"OLD_INSTANCE_NAME": str(old_name)})


def validate(full_name: str, osparams: dict[str, Any], search: list[str], *,
             timeout: float = VERIFY_TIMEOUT) -> None:
    """os_validate (Ganeti's ValidateOS with the 'parameters' check): the OS exists and is
    valid, the variant is right, the parameters are known and ``verify parameters``
    accepts them. WrongInput says what is wrong."""
    osdef = find(full_name, search)
    check_variant(osdef, full_name)
    if max(osdef.api_versions) < API_V20:
        return
    check_parameters(osdef, osparams)
    env = core_env(osdef, full_name, osparams)
    with tempfile.TemporaryFile() as output:
        result = execute([osdef.script(SCRIPT_VERIFY), VERIFY_PARAMETERS], cwd=osdef.path,
                         env=env, output=output, timeout=timeout)
        output.seek(0, os.SEEK_END)
        output.seek(max(0, output.tell() - _TAIL_BYTES))
        text = output.read().decode("utf-8", errors="replace").strip()
    if result.returncode is None:
        raise errors.ExecError(f"the verify script of OS '{osdef.name}' "
                               f"{result.reason}")
    if result.failed:
        lines = [line for line in text.splitlines() if line.strip()]
        said = lines[-1].strip() if lines else result.reason
        raise errors.WrongInput(
            f"OS '{osdef.name}' refuses the parameters: {said}",
            "\n".join(lines[-LOG_TAIL_LINES:]) if len(lines) > 1 else None)
