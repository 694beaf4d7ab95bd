"""Raw rtnetlink payload builders for the core tests (no family module needed)."""

from __future__ import annotations

import ipaddress
import json
import socket
import struct

from aionlmmap import AttributeBuilder, Message
from aionlmmap.constants import (
    NLM_F_ACK,
    NLM_F_CREATE,
    NLM_F_DUMP,
    NLM_F_EXCL,
    NLM_F_REQUEST,
    RTM_GETLINK,
    RTM_GETROUTE,
    RTM_NEWADDR,
)

from conftest import ip

IFA_ADDRESS = 1
IFA_LOCAL = 2
IFLA_IFNAME = 3


def ifindex(netns: str, name: str) -> int:
    return int(json.loads(ip(netns, "-j", "link", "show", "dev", name).stdout)[0]["ifindex"])


def getlink_dump() -> Message:
    return Message(RTM_GETLINK, NLM_F_REQUEST | NLM_F_DUMP, payload=bytes(16))


def getroute_dump() -> Message:
    return Message(RTM_GETROUTE, NLM_F_REQUEST | NLM_F_DUMP, payload=struct.pack("=BBBBBBBBI", socket.AF_INET, 0, 0, 0, 0, 0, 0, 0, 0))


def link_name(msg: Message) -> str | None:
    from aionlmmap import Attributes

    return Attributes(msg.payload, 16).get_str(IFLA_IFNAME)


def newaddr(index: int, cidr: str) -> Message:
    iface = ipaddress.ip_interface(cidr)
    family = socket.AF_INET if iface.version == 4 else socket.AF_INET6
    header = struct.pack("=BBBBI", family, iface.network.prefixlen, 0, 0, index)
    attrs = AttributeBuilder().add_ip(IFA_LOCAL, iface.ip).add_ip(IFA_ADDRESS, iface.ip).build()
    return Message(RTM_NEWADDR, NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL, payload=header + attrs)
