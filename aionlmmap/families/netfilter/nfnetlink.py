"""Shared nfnetlink pieces: ``struct nfgenmsg``, message types, batches.

Pure: imports neither asyncio nor socket.

Every NETLINK_NETFILTER message starts with ``struct nfgenmsg {u8
nfgen_family; u8 version; __be16 res_id}`` (include/uapi/linux/netfilter/
nfnetlink.h). The nlmsg_type is split in two bytes: the subsystem
(NFNL_SUBSYS_QUEUE, NFNL_SUBSYS_ULOG, NFNL_SUBSYS_NFTABLES, ...) in the high
byte and the subsystem's message type in the low byte.

>>> from aionlmmap.constants import NFNL_SUBSYS_QUEUE
>>> nfnl_type(NFNL_SUBSYS_QUEUE, 2)
770
>>> encode_nfgenmsg(family=0, res_id=7)
b'\\x00\\x00\\x00\\x07'
"""

from __future__ import annotations

import struct
from typing import Any

import attrs

from ...constants import (
    NFGEN_HDRLEN,
    NFNETLINK_V0,
    NFNL_MSG_BATCH_BEGIN,
    NFNL_MSG_BATCH_END,
    NFNL_SUBSYS_NFTABLES,
)
from ...errors import DecodeError
from ...message import Message

__all__ = [
    "NFGENMSG",
    "NfGenMsg",
    "nfnl_type",
    "split_type",
    "encode_nfgenmsg",
    "parse_nfgenmsg",
    "batch_begin",
    "batch_end",
    "NFNL_BATCH_GENID",
    "NFNLGRP_NFTABLES",
    "NFNLGRP_NFTRACE",
    "NF_DROP",
    "NF_ACCEPT",
    "NF_STOLEN",
    "NF_QUEUE",
    "NF_REPEAT",
    "NF_STOP",
    "HOOK_NAMES",
    "CT_INFO_NAMES",
]

#: struct nfgenmsg {u8 nfgen_family; u8 version; __be16 res_id}
NFGENMSG = struct.Struct("!BBH")
_pack_nfgenmsg = NFGENMSG.pack
_unpack_nfgenmsg = NFGENMSG.unpack_from

# enum nfnl_batch_attributes: NFNL_BATCH_GENID (be32) asks the kernel to
# refuse the batch with ERESTART if the ruleset generation moved on
# (nfnetlink_rcv_skb_batch -> ss->valid_genid).
NFNL_BATCH_GENID = 1

# enum nfnetlink_groups (multicast groups of NETLINK_NETFILTER)
NFNLGRP_CONNTRACK_NEW = 1
NFNLGRP_CONNTRACK_UPDATE = 2
NFNLGRP_CONNTRACK_DESTROY = 3
NFNLGRP_NFTABLES = 7
NFNLGRP_ACCT_QUOTA = 8
NFNLGRP_NFTRACE = 9

# Netfilter verdicts (include/uapi/linux/netfilter.h). NF_QUEUE carries the
# target queue number in its upper 16 bits (NF_VERDICT_QBITS).
NF_DROP = 0
NF_ACCEPT = 1
NF_STOLEN = 2
NF_QUEUE = 3
NF_REPEAT = 4
NF_STOP = 5
NF_VERDICT_QBITS = 16

#: enum nf_inet_hooks, by number (the same numbers for IPv4, IPv6 and inet).
HOOK_NAMES = {0: "prerouting", 1: "input", 2: "forward", 3: "output", 4: "postrouting", 5: "ingress"}

#: enum ip_conntrack_info (include/uapi/linux/netfilter/nf_conntrack_common.h)
CT_INFO_NAMES = {0: "established", 1: "related", 2: "new", 3: "established-reply", 4: "related-reply"}


@attrs.frozen
class NfGenMsg:
    """A decoded ``struct nfgenmsg``."""

    family: int
    version: int
    res_id: int


def nfnl_type(subsystem: int, message_type: int) -> int:
    """The nlmsg_type for ``message_type`` of ``subsystem`` (NFNL_SUBSYS_*)."""
    if not 0 <= subsystem <= 0xFF or not 0 <= message_type <= 0xFF:
        raise ValueError(f"nfnetlink subsystem {subsystem} and message type {message_type} must each fit one byte")
    return subsystem << 8 | message_type


def split_type(nlmsg_type: int) -> tuple[int, int]:
    """(subsystem, message type) of an nfnetlink nlmsg_type."""
    return nlmsg_type >> 8, nlmsg_type & 0xFF


def encode_nfgenmsg(family: int = 0, res_id: int = 0, version: int = NFNETLINK_V0) -> bytes:
    """The 4-byte nfgenmsg that starts every nfnetlink payload (res_id in
    network byte order: queue number, log group, or nftables' subsystem)."""
    return _pack_nfgenmsg(family, version, res_id)


def parse_nfgenmsg(payload: Any) -> NfGenMsg:
    """Decode the nfgenmsg at the start of ``payload``; :class:`DecodeError` if short."""
    if len(payload) < NFGEN_HDRLEN:
        raise DecodeError(f"nfnetlink payload of {len(payload)} bytes is shorter than the 4-byte nfgenmsg")
    family, version, res_id = _unpack_nfgenmsg(payload, 0)
    return NfGenMsg(family, version, res_id)


def batch_begin(res_id: int = NFNL_SUBSYS_NFTABLES, genid: int | None = None) -> Message:
    """NFNL_MSG_BATCH_BEGIN for a subsystem's batch. ``genid`` (from
    NFT_MSG_GETGEN) makes the kernel refuse the whole batch with ERESTART if
    another process changed the ruleset since it was read."""
    payload = encode_nfgenmsg(0, res_id)
    if genid is not None:
        # struct nlattr {len 8, type NFNL_BATCH_GENID} + __be32
        payload += struct.pack("=HH", 8, NFNL_BATCH_GENID) + struct.pack("!I", genid & 0xFFFFFFFF)
    return Message(NFNL_MSG_BATCH_BEGIN, 0, payload=payload)


def batch_end(res_id: int = NFNL_SUBSYS_NFTABLES) -> Message:
    """NFNL_MSG_BATCH_END closing a batch opened by :func:`batch_begin`."""
    return Message(NFNL_MSG_BATCH_END, 0, payload=encode_nfgenmsg(0, res_id))
