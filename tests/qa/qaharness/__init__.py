"""cardume's virtual QA cluster: Debian guests under QEMU with real LVM and DRBD."""
