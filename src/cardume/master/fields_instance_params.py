"""The instance fields of single parameters: ``be/*`` and ``hv/*``.

Ganeti lists the parameters of every hypervisor it knows (Xen, KVM, LXC, chroot, fake), whatever
the cluster runs, so an ``hv/NAME`` field exists even when no hypervisor cardume has takes NAME;
on an instance whose hypervisor has no such parameter (in cardume) the cell is unavailable, as
Ganeti shows a KVM parameter on a Xen instance. Parameters set only cluster-wide
(constants.HVC_GLOBALS, e.g. migration_mode) have no instance field, as in Ganeti.
"""

from __future__ import annotations

from typing import Any

from cardume.master.fields import UNAVAIL, Getter, QField

#: Every hypervisor parameter Ganeti 3.0 lists as an instance field, by the field kind Ganeti
#: gives it (its string-valued parameters are of kind "other": they may be unset).
HV_BOOL = (
    "acpi", "pae", "serial_console", "spice_playback_compression", "spice_use_tls",
    "spice_use_vdagent", "use_bootloader", "use_chroot", "use_guest_agent", "use_localtime",
    "user_shutdown", "vhost_net", "viridian", "vnc_tls", "vnc_x509_verify", "vnet_hdr",
)
HV_NUMBER = (
    "cpu_cap", "cpu_cores", "cpu_sockets", "cpu_threads", "cpu_weight", "kvm_pci_reservations",
    "migration_downtime", "num_ttys", "serial_speed", "spice_ip_version", "startup_timeout",
    "virtio_net_queues",
)
HV_OTHER = (
    "blockdev_prefix", "boot_order", "bootloader_args", "bootloader_path", "cdrom2_image_path",
    "cdrom_disk_type", "cdrom_image_path", "cpu_mask", "cpu_type", "cpuid", "device_model",
    "devices", "disk_aio", "disk_cache", "disk_discard", "disk_type", "drop_capabilities",
    "extra_cgroups", "extra_config", "floppy_image_path", "init_script", "initrd_path",
    "kernel_args", "kernel_path", "keymap", "kvm_extra", "kvm_flag", "kvm_path",
    "machine_version", "mem_path", "migration_caps", "nic_type", "pci_pass", "reboot_behavior",
    "root_path", "scsi_controller_type", "security_domain", "security_model", "soundhw",
    "spice_bind", "spice_image_compression", "spice_jpeg_wan_compression",
    "spice_password_file", "spice_streaming_video", "spice_tls_ciphers",
    "spice_zlib_glz_wan_compression", "usb_devices", "usb_mouse", "vga", "vif_script",
    "vif_type", "vnc_bind_address", "vnc_password_file", "vnc_x509_path",
)

#: Column titles of the parameter fields where Ganeti's is not the field name itself.
HV_TITLES = {"acpi": "ACPI", "boot_order": "Boot_order", "cdrom_image_path": "CDROM_image_path",
             "cpu_type": "cpu_type", "disk_type": "Disk_type", "initrd_path": "Initrd_path",
             "kernel_path": "Kernel_path", "nic_type": "NIC_type", "pae": "PAE",
             "pci_pass": "pci_pass", "vnc_bind_address": "VNC_bind_address"}
BE_TITLES = {"auto_balance": "Auto_balance", "minmem": "ConfigMinMem", "vcpus": "ConfigVCPUs",
             "maxmem": "ConfigMaxMem"}
#: Backend parameters and their kinds (be/memory, the old name of be/maxmem, is an alias).
BE_KINDS = {"always_failover": "bool", "auto_balance": "bool", "maxmem": "unit",
            "minmem": "unit", "spindle_use": "number", "vcpus": "number"}


def param_getter(family: str, key: str) -> Getter:
    """The value of one parameter after the cluster/group defaults are layered under the
    instance's own; unavailable where the instance's hypervisor has no such parameter."""
    def get(q: Any, o: Any) -> Any:
        return q.filled(o, family).get(key, UNAVAIL)
    return get


def param_fields() -> list[QField]:
    fields = []
    for key, kind in BE_KINDS.items():
        fields.append(QField(f"be/{key}", BE_TITLES.get(key, f"be/{key}"), kind,
                             f"backend parameter {key}, with inherited defaults",
                             param_getter("be", key)))
    for kind, keys in (("bool", HV_BOOL), ("number", HV_NUMBER), ("other", HV_OTHER)):
        for key in keys:
            fields.append(QField(f"hv/{key}", HV_TITLES.get(key, f"hv/{key}"), kind,
                                 f"hypervisor parameter {key}, with inherited defaults "
                                 "(unavailable if the instance's hypervisor lacks it)",
                                 param_getter("hv", key)))
    return fields
