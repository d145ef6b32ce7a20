"""Names and defaults that are part of Ganeti's external interface, kept identical."""

from __future__ import annotations

TYPE_CHECKING = False  # `typing` costs every CLI start ~3 ms; only mypy needs it here
if TYPE_CHECKING:
    from typing import Any


PROTOCOL_VERSION = 1
DEFAULT_NODED_PORT = 1811
DEFAULT_RAPI_PORT = 5080

# Hypervisors and disk templates (Ganeti's names).
HT_FAKE = "fake"
HT_KVM = "kvm"
HYPER_TYPES = ("xen-pvm", "xen-hvm", "kvm", "lxc", "chroot", "fake")

DT_DISKLESS = "diskless"
DT_FILE = "file"
DT_SHARED_FILE = "sharedfile"
DT_PLAIN = "plain"
DT_DRBD8 = "drbd"
DT_BLOCK = "blockdev"
DT_RBD = "rbd"
DT_EXT = "ext"
DT_GLUSTER = "gluster"
DISK_TEMPLATES = (DT_DISKLESS, DT_FILE, DT_SHARED_FILE, DT_PLAIN, DT_DRBD8,
                  DT_BLOCK, DT_RBD, DT_EXT, DT_GLUSTER)
MAX_DISKS = 16
MAX_NICS = 8
# Storage types (gnt-node list-storage, node_info "storage" items).
ST_FILE = "file"
ST_SHARED_FILE = "sharedfile"
ST_LVM_VG = "lvm-vg"
ST_LVM_PV = "lvm-pv"
STORAGE_TYPES = (ST_FILE, ST_SHARED_FILE, ST_LVM_VG, ST_LVM_PV)
DTS_FILEBASED = frozenset({DT_FILE, DT_SHARED_FILE, DT_GLUSTER})

DEFAULT_FILE_STORAGE_DIR = "/srv/ganeti/file-storage"
DEFAULT_SHARED_FILE_STORAGE_DIR = "/srv/ganeti/shared-file-storage"
DEFAULT_VG = "xenvg"
DEFAULT_MAC_PREFIX = "aa:00:00"
DEFAULT_CANDIDATE_POOL_SIZE = 10
DEFAULT_MAX_RUNNING_JOBS = 20
DEFAULT_MAX_TRACKED_JOBS = 25

# Node group allocation policies.
ALLOC_POLICIES = ("preferred", "last_resort", "unallocable")
DEFAULT_GROUP = "default"

# Fixed choices of opcode parameters (opcodes/ names them; the gnt-* commands read them
# from the generated cli/optable.py).
DEFAULT_SHUTDOWN_TIMEOUT = 120
"""Seconds an instance gets to shut down cleanly before it is stopped hard."""
INSTANCE_REBOOT_TYPES = ("soft", "hard", "full")
INSTANCE_CREATE_MODES = ("create", "import", "remote-import")
FILE_DRIVERS = ("loop", "blktap", "blktap2")
REPLACE_DISK_MODES = ("replace_on_primary", "replace_on_secondary", "replace_new_secondary",
                      "replace_auto")
NODE_EVAC_MODES = ("primary-only", "secondary-only", "all")
TAG_KINDS = ("cluster", "node", "nodegroup", "instance", "network")

# Job and opcode statuses.
JOB_STATUS_QUEUED = "queued"
JOB_STATUS_WAITING = "waiting"
JOB_STATUS_RUNNING = "running"
JOB_STATUS_SUCCESS = "success"
JOB_STATUS_ERROR = "error"
JOB_STATUS_CANCELING = "canceling"
JOB_STATUS_CANCELED = "canceled"
JOBS_PENDING = frozenset({JOB_STATUS_QUEUED, JOB_STATUS_WAITING, JOB_STATUS_CANCELING})
JOBS_FINALIZED = frozenset({JOB_STATUS_SUCCESS, JOB_STATUS_ERROR, JOB_STATUS_CANCELED})
OP_PRIO_HIGHEST = -20
OP_PRIO_HIGH = -10
OP_PRIO_NORMAL = 0
OP_PRIO_LOW = 10
OP_PRIO_LOWEST = 19
PRIORITY_NAMES = {"low": OP_PRIO_LOW, "normal": OP_PRIO_NORMAL, "high": OP_PRIO_HIGH}

ELOG_MESSAGE = "message"

# Parameter defaults: what a parameter is when nobody set it anywhere.
BEC_DEFAULTS: dict[str, Any] = {
    "maxmem": 128,
    "minmem": 128,
    "vcpus": 1,
    "auto_balance": True,
    "always_failover": False,
    "spindle_use": 1,
}
BES_PARAMETER_TYPES = {
    "maxmem": "size", "minmem": "size", "memory": "size", "vcpus": "int",
    "auto_balance": "bool", "always_failover": "bool", "spindle_use": "int",
}

HVC_DEFAULTS: dict[str, dict[str, Any]] = {
    HT_FAKE: {"migration_mode": "live"},
    HT_KVM: {
        "kernel_path": "", "kernel_args": "ro", "initrd_path": "", "root_path": "/dev/vda1",
        "serial_console": True, "serial_speed": 38400, "boot_order": "disk",
        "disk_type": "paravirtual", "disk_cache": "default", "nic_type": "paravirtual",
        "vnc_bind_address": "", "cpu_type": "", "acpi": True, "reboot_behavior": "reboot",
        "migration_downtime": 30, "migration_bandwidth": 32, "migration_port": 8102,
        "migration_mode": "live", "use_chroot": False, "security_model": "none",
        "kvm_flag": "", "machine_version": "", "kvm_extra": "", "vhost_net": False,
        "usb_mouse": "", "keymap": "", "cdrom_image_path": "", "user_shutdown": False,
        "security_domain": "",
    },
}
#: An instance's state in hypervisor instance info when its guest powered itself off and the
#: hypervisor keeps it (kvm's user_shutdown): shown as USER_down, not ERROR_down.
HV_STATE_USER_DOWN = "user_down"
#: Hypervisor parameters set for the whole cluster only, never on one instance (Ganeti's).
HVC_GLOBALS = frozenset({"migration_bandwidth", "migration_mode", "migration_port", "xen_cmd"})
#: Ganeti's migration modes (hypervisor parameter migration_mode, migrate --migration-mode).
HT_MIGRATION_MODES = ("live", "non-live")
HVS_PARAMETER_TYPES: dict[str, dict[str, str]] = {
    HT_FAKE: {"migration_mode": "string"},
    HT_KVM: {
        "kernel_path": "string", "kernel_args": "string", "initrd_path": "string",
        "root_path": "string", "serial_console": "bool", "serial_speed": "int",
        "boot_order": "string", "disk_type": "string", "disk_cache": "string",
        "nic_type": "string", "vnc_bind_address": "string", "cpu_type": "string",
        "acpi": "bool", "reboot_behavior": "string", "migration_downtime": "int",
        "migration_bandwidth": "int", "migration_port": "int", "migration_mode": "string",
        "use_chroot": "bool", "security_model": "string", "kvm_flag": "string",
        "machine_version": "string", "kvm_extra": "string", "vhost_net": "bool",
        "usb_mouse": "string", "keymap": "string", "cdrom_image_path": "string",
        "user_shutdown": "bool", "security_domain": "string",
    },
}

NIC_MODES = ("bridged", "routed", "openvswitch")
NICC_DEFAULTS: dict[str, Any] = {"mode": "bridged", "link": "xen-br0", "vlan": ""}
NICS_PARAMETER_TYPES = {"mode": "string", "link": "string", "vlan": "string"}

NDC_DEFAULTS: dict[str, Any] = {
    "oob_program": "", "spindle_count": 1, "exclusive_storage": False, "ovs": False,
    "ovs_name": "switch1", "ovs_link": "", "ssh_port": 22, "cpu_speed": 1.0,
}
NDS_PARAMETER_TYPES = {
    "oob_program": "string", "spindle_count": "int", "exclusive_storage": "bool",
    "ovs": "bool", "ovs_name": "string", "ovs_link": "string", "ssh_port": "int",
    "cpu_speed": "float",
}

DISK_DT_DEFAULTS: dict[str, dict[str, Any]] = {
    DT_PLAIN: {"stripes": 1},
    DT_DRBD8: {
        "resync-rate": 61440, "data-stripes": 1, "meta-stripes": 1, "disk-barriers": "n",
        "meta-barriers": False, "metavg": "", "protocol": "C", "dynamic-resync": False,
        "c-plan-ahead": 20, "c-fill-target": 0, "c-delay-target": 1, "c-max-rate": 61440,
        "c-min-rate": 4096, "disk-custom": "", "net-custom": "",
    },
    DT_DISKLESS: {}, DT_FILE: {}, DT_SHARED_FILE: {}, DT_BLOCK: {}, DT_RBD: {"pool": "rbd"},
    DT_EXT: {}, DT_GLUSTER: {},
}
DISK_PARAMETER_TYPES: dict[str, dict[str, str]] = {
    DT_PLAIN: {"stripes": "int"},
    DT_DRBD8: {
        "resync-rate": "int", "data-stripes": "int", "meta-stripes": "int",
        "disk-barriers": "string", "meta-barriers": "bool", "metavg": "string",
        "protocol": "string", "dynamic-resync": "bool", "c-plan-ahead": "int",
        "c-fill-target": "int", "c-delay-target": "int", "c-max-rate": "int",
        "c-min-rate": "int", "disk-custom": "string", "net-custom": "string",
    },
    DT_RBD: {"pool": "string"},
}

IPOLICY_DEFAULTS: dict[str, Any] = {
    "minmax": [{
        "min": {"memory-size": 128, "cpu-count": 1, "disk-count": 1, "disk-size": 1024,
                "nic-count": 1, "spindle-use": 1},
        "max": {"memory-size": 32768, "cpu-count": 8, "disk-count": 16,
                "disk-size": 1048576, "nic-count": 8, "spindle-use": 12},
    }],
    "std": {"memory-size": 128, "cpu-count": 1, "disk-count": 1, "disk-size": 1024,
            "nic-count": 1, "spindle-use": 1},
    "disk-templates": list(DISK_TEMPLATES),
    "vcpu-ratio": 4.0,
    "spindle-ratio": 32.0,
}

# Node roles as the `role` list field shows them.
NR_MASTER = "M"
NR_MCANDIDATE = "C"
NR_REGULAR = "R"
NR_DRAINED = "D"
NR_OFFLINE = "O"
