"""Hypervisor parameter values: what each hypervisor accepts beyond the types.

The master checks them when a job is submitted (``gnt-cluster modify -H``, ``gnt-instance
add/modify -H``), and the kvm hypervisor checks an instance's filled parameters again on the
node before it starts QEMU, with the same words. The types themselves are in
constants.HVS_PARAMETER_TYPES.
"""

from __future__ import annotations

import ipaddress
import os
import re
import shlex
from collections.abc import Callable
from typing import Any

from cardume import constants, errors

BOOT_ORDERS = {"disk": "c", "cdrom": "d", "network": "n", "floppy": "a"}
"""kvm boot_order: QEMU's ``-boot order=`` letter of each."""
DISK_TYPES = ("paravirtual", "ide", "scsi")
DISK_CACHES = ("default", "none", "writethrough", "writeback")
KVM_FLAGS = ("", "enabled", "disabled")
REBOOT_BEHAVIORS = ("reboot", "exit")
SECURITY_MODELS = ("none", "user", "pool")
USB_MICE = ("", "mouse", "tablet")
NIC_MODELS = {"paravirtual": "virtio-net-pci", "e1000": "e1000", "rtl8139": "rtl8139",
              "i82551": "i82551", "i82557b": "i82557b", "i82559er": "i82559er",
              "pcnet": "pcnet", "ne2k_pci": "ne2k_pci", "ne2k_isa": "ne2k_isa"}
"""kvm nic_type: the QEMU device model of each."""
USER_NAME_RE = re.compile(r"[A-Za-z0-9_.][A-Za-z0-9_.-]{0,31}")
MIGRATION_MODES = constants.HT_MIGRATION_MODES


def check_common(hypervisor: str, values: dict[str, Any]) -> None:
    """What every hypervisor's parameters must satisfy (types already checked)."""
    mode = values.get("migration_mode")
    if mode is not None and mode not in MIGRATION_MODES:
        raise errors.WrongInput(
            f"invalid value {mode!r} for hypervisor parameter {hypervisor}:migration_mode: "
            f"expected one of {', '.join(MIGRATION_MODES)}")


def check_kvm(values: dict[str, Any]) -> None:
    """Refuse bad kvm parameter values (types are already checked) with a one-line error
    naming the key and what is expected."""
    def bad(key: str, expected: str) -> errors.WrongInput:
        return errors.WrongInput(f"invalid value {values[key]!r} for hypervisor parameter "
                                 f"kvm:{key}: expected {expected}")

    choices = {"boot_order": tuple(BOOT_ORDERS), "disk_type": DISK_TYPES,
               "disk_cache": DISK_CACHES, "nic_type": tuple(NIC_MODELS),
               "kvm_flag": KVM_FLAGS, "reboot_behavior": REBOOT_BEHAVIORS,
               "security_model": SECURITY_MODELS, "usb_mouse": USB_MICE,
               "migration_mode": MIGRATION_MODES}
    for key, allowed in choices.items():
        if key in values and values[key] not in allowed:
            shown = ", ".join(repr(a) if a == "" else a for a in allowed)
            raise bad(key, f"one of {shown}")
    for key, low, high in (("migration_downtime", 1, 3_600_000),
                           ("migration_bandwidth", 1, 1_000_000),
                           ("migration_port", 1, 65535), ("serial_speed", 1, 4_000_000)):
        if key in values and values[key] is not None and not low <= values[key] <= high:
            raise bad(key, f"an integer from {low} to {high}")
    for key in ("kernel_path", "initrd_path", "cdrom_image_path"):
        value = values.get(key)
        if value and not os.path.isabs(value):
            raise bad(key, "an absolute path (or empty)")
    if values.get("vnc_bind_address"):
        try:
            ipaddress.ip_address(values["vnc_bind_address"])
        except ValueError:
            raise bad("vnc_bind_address", "an IP address (or empty)") from None
    if values.get("root_path") and any(c.isspace() for c in values["root_path"]):
        raise bad("root_path", "a device path without spaces")
    for key in ("kernel_args", "kvm_extra"):
        if values.get(key):
            try:
                words = shlex.split(values[key])
            except ValueError as err:
                raise bad(key, f"shell-quoted words ({err})") from None
            if key == "kvm_extra" and words and not words[0].startswith("-"):
                raise bad(key, "QEMU options, starting with '-'")
    for key in ("cpu_type", "machine_version", "keymap"):
        value = values.get(key)
        if value and not all(c.isalnum() or c in "-_.,=+" for c in value):
            raise bad(key, "a QEMU name (letters, digits, '-_.,=+')")
    # together only: given alone, the other comes from the defaults (checked once filled)
    model, domain = values.get("security_model"), values.get("security_domain")
    if "security_domain" in values and model == "user" and not domain:
        raise errors.WrongInput("hypervisor parameter kvm:security_model=user needs "
                                "kvm:security_domain, the user QEMU runs as")
    if domain and "security_model" in values and model != "user":
        raise errors.WrongInput(f"hypervisor parameter kvm:security_domain={domain} only "
                                "applies to security_model=user, not "
                                f"security_model={model}")
    if domain and not USER_NAME_RE.fullmatch(str(domain)):
        raise bad("security_domain", "a user name (letters, digits, '._-', not starting "
                                     "with '-')")


CHECKS: dict[str, Callable[[dict[str, Any]], None]] = {constants.HT_KVM: check_kvm}
"""Each hypervisor's own value checks, after check_common (``fake`` has none)."""


def check(hypervisor: str, values: dict[str, Any]) -> None:
    """Refuse a bad value of ``hypervisor``'s parameters with a one-line error."""
    check_common(hypervisor, values)
    own = CHECKS.get(hypervisor)
    if own is not None:
        own(values)
