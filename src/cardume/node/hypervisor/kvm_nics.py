"""Tap devices of kvm instances: one per NIC, named from the instance, set up by mode.

* ``bridged``: the tap joins the bridge named by the NIC's ``link`` (which must exist).
* ``routed``: the tap comes up with no bridge; a host route to the NIC's IP (``/32`` or
  ``/128``) goes through it (in routing table ``link`` when one is set), and the tap does
  proxy ARP (proxy NDP for IPv6) and forwarding, so the host answers for the guest's
  neighbours and forwards its traffic.
* ``openvswitch`` is refused (no Open vSwitch support in cardume yet).

Every command is an argument list run through the node's :class:`CommandRunner`; with
``netns`` set they all run inside that network namespace (``ip netns exec NS ...``), and
so must QEMU, which opens the taps by name.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
from collections.abc import Sequence
from typing import Any

from cardume import constants, errors
from cardume.node.cmd import CommandRunner
from cardume.rules.hvparams import NIC_MODELS

TAP_PREFIX = "tapc-"
IFNAMSIZ = 15  # longest Linux interface name
_LINK_RE = re.compile(r"^[A-Za-z0-9_.:@-]{1,15}$")
_MAC_RE = re.compile(r"^([0-9a-fA-F]{2}:){5}[0-9a-fA-F]{2}$")


def tap_name(instance: str, index: int, salt: str = "") -> str:
    """A tap name unique to (instance, NIC index), at most 15 characters. salt (the
    node's state directory) keeps apart the taps of two nodes on one host (a local
    cluster's source and target of a migration)."""
    digest = hashlib.sha256(f"{salt}\0{instance}\0{index}".encode()).hexdigest()
    return (TAP_PREFIX + digest)[:IFNAMSIZ]


def in_netns(argv: Sequence[str], netns: str | None) -> list[str]:
    """argv, run inside network namespace netns when one is given."""
    return ["ip", "netns", "exec", netns, *argv] if netns else list(argv)


def plan(instance: str, nics: list[dict[str, Any]], nic_type: str,
         salt: str = "") -> list[dict[str, Any]]:
    """Each NIC with its tap, QEMU ids and model; bad NICs refused before anything runs."""
    model = NIC_MODELS.get(nic_type)
    if model is None:
        raise errors.WrongInput(f"instance {instance}: unknown nic_type {nic_type!r} "
                                f"(expected {', '.join(NIC_MODELS)})")
    planned = []
    for index, nic in enumerate(nics):
        mode = nic.get("mode") or constants.NICC_DEFAULTS["mode"]
        link = str(nic.get("link") or "")
        mac = str(nic.get("mac") or "")
        ip = nic.get("ip") or None
        where = f"instance {instance}, NIC {index}"
        if not _MAC_RE.match(mac):
            raise errors.WrongInput(f"{where}: invalid MAC address {mac!r}")
        if mode == "bridged":
            if not _LINK_RE.match(link):
                raise errors.WrongInput(f"{where}: bridged mode needs a bridge name as link, "
                                        f"not {link!r}")
        elif mode == "routed":
            if not ip:
                raise errors.WrongInput(f"{where}: routed mode needs an IP address",
                                        "set one with --net N:ip=ADDRESS")
            try:
                ipaddress.ip_address(str(ip))
            except ValueError:
                raise errors.WrongInput(f"{where}: invalid IP address {ip!r}") from None
            if link and not re.fullmatch(r"[A-Za-z0-9_-]{1,31}", link):
                raise errors.WrongInput(f"{where}: invalid routing table {link!r}")
        elif mode == "openvswitch":
            raise errors.WrongInput(f"{where}: NIC mode openvswitch is not supported by the "
                                    "kvm hypervisor", "use bridged or routed")
        else:
            raise errors.WrongInput(f"{where}: unknown NIC mode {mode!r}")
        planned.append({"index": index, "tap": tap_name(instance, index, salt), "mode": mode,
                        "link": link, "mac": mac.lower(), "ip": str(ip) if ip else None,
                        "model": model, "netdev": f"net{index}"})
    return planned


def qemu_args(planned: list[dict[str, Any]], vhost: bool = False) -> list[str]:
    args: list[str] = []
    for nic in planned:
        args += ["-netdev", f"tap,id={nic['netdev']},ifname={nic['tap']},script=no,"
                            f"downscript=no{',vhost=on' if vhost else ''}",
                 "-device", f"{nic['model']},mac={nic['mac']},netdev={nic['netdev']},"
                            f"id=nic{nic['index']}"]
    return args


class TapManager:
    def __init__(self, runner: CommandRunner, netns: str | None = None) -> None:
        self.runner = runner
        self.netns = netns

    def _run(self, *argv: str, check: bool = True) -> Any:
        return self.runner.run(in_netns(argv, self.netns), check=check)

    def exists(self, dev: str) -> bool:
        return bool(self._run("ip", "link", "show", "dev", dev, check=False).ok)

    def setup(self, planned: list[dict[str, Any]]) -> None:
        """Create and wire every tap; on failure remove those made and raise."""
        for nic in planned:
            if nic["mode"] == "bridged" and not self.exists(nic["link"]):
                raise errors.EnvironmentProblem(
                    f"NIC {nic['index']}: bridge {nic['link']} does not exist on this node",
                    "create it, or give the NIC another link")
        made: list[str] = []
        try:
            for nic in planned:
                tap = nic["tap"]
                self._run("ip", "link", "delete", "dev", tap, check=False)  # a stale one
                self._run("ip", "tuntap", "add", "dev", tap, "mode", "tap")
                made.append(tap)
                if nic["mode"] == "bridged":
                    self._run("ip", "link", "set", "dev", tap, "master", nic["link"], "up")
                else:
                    self._routed(nic)
        except BaseException:
            self.remove(made)
            raise

    def _routed(self, nic: dict[str, Any]) -> None:
        tap, ip = nic["tap"], nic["ip"]
        v6 = ":" in ip
        self._run("ip", "link", "set", "dev", tap, "up")
        route = ["ip", *(["-6"] if v6 else []), "route", "replace",
                 f"{ip}/{128 if v6 else 32}", "dev", tap]
        if nic["link"]:
            route += ["table", nic["link"]]
        self._run(*route)
        if v6:
            self._run("sysctl", "-q", "-w", f"net.ipv6.conf.{tap}.proxy_ndp=1")
            self._run("sysctl", "-q", "-w", f"net.ipv6.conf.{tap}.forwarding=1")
        else:
            self._run("sysctl", "-q", "-w", f"net.ipv4.conf.{tap}.proxy_arp=1")
            self._run("sysctl", "-q", "-w", f"net.ipv4.conf.{tap}.forwarding=1")

    def remove(self, taps: list[str]) -> None:
        """Delete taps (their routes go with them); missing ones are fine."""
        for tap in taps:
            self._run("ip", "link", "delete", "dev", tap, check=False)
