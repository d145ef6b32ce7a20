"""Networks: address pools connected to node groups."""

from __future__ import annotations

from cardume import constants
from cardume.opcodes.base import OpCode, Param
from cardume.rules.paramtypes import (
    TBool,
    TMaybeString,
    TMaybeStringList,
    TNonEmptyString,
    TString,
    TStringList,
)

# --- networks ----------------------------------------------------------------------------

def _network_name() -> Param:
    return Param("network_name", TNonEmptyString, required=True, doc="name of the network")


class OpNetworkAdd(OpCode):
    OP_ID = "OP_NETWORK_ADD"
    OP_DSC_FIELD = "network_name"
    DOC = "Create an IP network and its address pool."
    PARAMS = (
        _network_name(),
        Param("network", TNonEmptyString, required=True, doc="IPv4 subnet, CIDR"),
        Param("gateway", TMaybeString, None, "IPv4 gateway"),
        Param("network6", TMaybeString, None, "IPv6 subnet, CIDR"),
        Param("gateway6", TMaybeString, None, "IPv6 gateway"),
        Param("mac_prefix", TMaybeString, None, "MAC prefix of the network's NICs, XX:XX:XX"),
        Param("add_reserved_ips", TMaybeStringList, None, "addresses to reserve externally"),
        Param("conflicts_check", TBool, True, "check for conflicting IPs"),
        Param("tags", TStringList, [], "tags"),
    )


class OpNetworkRemove(OpCode):
    OP_ID = "OP_NETWORK_REMOVE"
    OP_DSC_FIELD = "network_name"
    DOC = "Remove a network connected to no node group."
    PARAMS = (
        _network_name(),
        Param("force", TBool, False, "force"),
    )


class OpNetworkSetParams(OpCode):
    OP_ID = "OP_NETWORK_SET_PARAMS"
    OP_DSC_FIELD = "network_name"
    DOC = "Change a network's gateways, IPv6 subnet, MAC prefix and reserved addresses."
    PARAMS = (
        _network_name(),
        Param("gateway", TMaybeString, None, "IPv4 gateway ('none' removes it)"),
        Param("network6", TMaybeString, None, "IPv6 subnet ('none' removes it)"),
        Param("gateway6", TMaybeString, None, "IPv6 gateway ('none' removes it)"),
        Param("mac_prefix", TMaybeString, None, "MAC prefix ('none' removes it)"),
        Param("add_reserved_ips", TMaybeStringList, None, "addresses to reserve externally"),
        Param("remove_reserved_ips", TMaybeStringList, None, "external reservations to drop"),
    )


class OpNetworkConnect(OpCode):
    OP_ID = "OP_NETWORK_CONNECT"
    OP_DSC_FIELD = "network_name"
    DOC = "Connect a network to a node group with a NIC mode, link and VLAN."
    PARAMS = (
        Param("group_name", TNonEmptyString, required=True, doc="node group"),
        _network_name(),
        Param("network_mode", TNonEmptyString, required=True, doc="NIC mode",
              choices=constants.NIC_MODES),
        Param("network_link", TNonEmptyString, required=True, doc="NIC link"),
        Param("network_vlan", TString, "", "VLAN"),
        Param("conflicts_check", TBool, True, "check for conflicting IPs"),
    )


class OpNetworkDisconnect(OpCode):
    OP_ID = "OP_NETWORK_DISCONNECT"
    OP_DSC_FIELD = "network_name"
    DOC = "Disconnect a network from a node group."
    PARAMS = (
        Param("group_name", TNonEmptyString, required=True, doc="node group"),
        _network_name(),
    )


class OpNetworkRename(OpCode):
    OP_ID = "OP_NETWORK_RENAME"
    OP_DSC_FIELD = "network_name"
    DOC = "Rename a network (Ganeti 3.1's operation)."
    PARAMS = (
        _network_name(),
        Param("new_name", TNonEmptyString, required=True, doc="new name"),
    )
