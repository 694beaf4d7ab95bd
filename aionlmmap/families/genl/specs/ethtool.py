"""ethtool netlink (include/uapi/linux/ethtool_netlink.h, Linux >= 5.6),
declared as data: link info, link modes, link state, features, rings,
channels, statistics, and their notifications (group "monitor").

Requests and replies carry different command numbers in ethtool (enum
ethtool_msg_user_* / ethtool_msg_kernel_*): ``reply-value`` holds the
kernel's."""

from __future__ import annotations

from typing import Any

_HEADER = {"name": "header", "type": "nest", "nested-attributes": "header"}


def _u32s(*names: str) -> list[dict[str, Any]]:
    return [{"name": name, "type": "u32"} for name in names]


FAMILY: dict[str, Any] = {
    "name": "ethtool",
    "protocol": "genetlink",
    "version": 1,
    "attribute-sets": [
        {"name": "header", "attributes": [{"name": "dev-index", "type": "u32"}, {"name": "dev-name", "type": "string"}, {"name": "flags", "type": "u32"}]},
        {"name": "bitset-bit", "attributes": [{"name": "index", "type": "u32"}, {"name": "name", "type": "string"}, {"name": "value", "type": "flag"}]},
        {"name": "bitset-bits", "attributes": [{"name": "bit", "type": "nest", "nested-attributes": "bitset-bit", "multi-attr": True}]},
        {
            "name": "bitset",
            "attributes": [
                {"name": "nomask", "type": "flag"},
                {"name": "size", "type": "u32"},
                {"name": "bits", "type": "nest", "nested-attributes": "bitset-bits"},
                {"name": "value", "type": "binary"},
                {"name": "mask", "type": "binary"},
            ],
        },
        {
            "name": "linkinfo",
            "attributes": [_HEADER, {"name": "port", "type": "u8"}, {"name": "phyaddr", "type": "u8"}, {"name": "tp-mdix", "type": "u8"},
                           {"name": "tp-mdix-ctrl", "type": "u8"}, {"name": "transceiver", "type": "u8"}],  # fmt: skip
        },
        {
            "name": "linkmodes",
            "attributes": [
                _HEADER,
                {"name": "autoneg", "type": "u8"},
                {"name": "ours", "type": "nest", "nested-attributes": "bitset"},
                {"name": "peer", "type": "nest", "nested-attributes": "bitset"},
                {"name": "speed", "type": "u32"},
                {"name": "duplex", "type": "u8"},
                {"name": "master-slave-cfg", "type": "u8"},
                {"name": "master-slave-state", "type": "u8"},
                {"name": "lanes", "type": "u32"},
                {"name": "rate-matching", "type": "u8"},
            ],
        },
        {
            "name": "linkstate",
            "attributes": [_HEADER, {"name": "link", "type": "u8"}, {"name": "sqi", "type": "u32"}, {"name": "sqi-max", "type": "u32"},
                           {"name": "ext-state", "type": "u8"}, {"name": "ext-substate", "type": "u8"}, {"name": "ext-down-cnt", "type": "u32"}],  # fmt: skip
        },
        {
            "name": "features",
            "attributes": [_HEADER] + [{"name": name, "type": "nest", "nested-attributes": "bitset"} for name in ("hw", "wanted", "active", "nochange")],
        },
        {
            "name": "rings",
            "attributes": [_HEADER, *_u32s("rx-max", "rx-mini-max", "rx-jumbo-max", "tx-max", "rx", "rx-mini", "rx-jumbo", "tx", "rx-buf-len"),
                           {"name": "tcp-data-split", "type": "u8"}, {"name": "cqe-size", "type": "u32"}, {"name": "tx-push", "type": "u8"},
                           {"name": "rx-push", "type": "u8"}, *_u32s("tx-push-buf-len", "tx-push-buf-len-max", "hds-thresh", "hds-thresh-max")],  # fmt: skip
        },
        {
            "name": "channels",
            "attributes": [_HEADER, *_u32s("rx-max", "tx-max", "other-max", "combined-max", "rx-count", "tx-count", "other-count", "combined-count")],
        },
        {
            "name": "stats",
            "attributes": [
                {"name": "pad", "type": "pad"},
                _HEADER,
                {"name": "groups", "type": "nest", "nested-attributes": "bitset"},
                {"name": "grp", "type": "nest", "nested-attributes": "stats-grp", "multi-attr": True},
                {"name": "src", "type": "u32"},
            ],
        },
        {
            "name": "stats-grp",
            "attributes": [
                {"name": "pad", "type": "pad"},
                {"name": "id", "type": "u32"},
                {"name": "ss-id", "type": "u32"},
                # a nest holding one u64 whose attribute type is the statistic's number
                {"name": "stat", "type": "binary", "multi-attr": True},
                {"name": "hist-rx", "type": "binary", "multi-attr": True},
                {"name": "hist-tx", "type": "binary", "multi-attr": True},
                {"name": "hist-bkt-low", "type": "u32"},
                {"name": "hist-bkt-hi", "type": "u32"},
                {"name": "hist-val", "type": "u64"},
            ],
        },
    ],
    "operations": {
        "list": [
            {"name": "linkinfo-get", "value": 2, "reply-value": 2, "attribute-set": "linkinfo", "do": {}, "dump": {}},
            {"name": "linkinfo-ntf", "value": 3, "notify": "linkinfo-get"},
            {"name": "linkmodes-get", "value": 4, "reply-value": 4, "attribute-set": "linkmodes", "do": {}, "dump": {}},
            {"name": "linkmodes-ntf", "value": 5, "notify": "linkmodes-get"},
            {"name": "linkstate-get", "value": 6, "reply-value": 6, "attribute-set": "linkstate", "do": {}, "dump": {}},
            {"name": "features-get", "value": 11, "reply-value": 11, "attribute-set": "features", "do": {}, "dump": {}},
            {"name": "features-ntf", "value": 13, "notify": "features-get"},
            {"name": "rings-get", "value": 15, "reply-value": 16, "attribute-set": "rings", "do": {}, "dump": {}},
            {"name": "rings-ntf", "value": 17, "notify": "rings-get"},
            {"name": "channels-get", "value": 17, "reply-value": 18, "attribute-set": "channels", "do": {}, "dump": {}},
            {"name": "channels-ntf", "value": 19, "notify": "channels-get"},
            {"name": "stats-get", "value": 32, "reply-value": 33, "attribute-set": "stats", "do": {}, "dump": {}},
        ]
    },
    "mcast-groups": {"list": [{"name": "monitor"}]},
}

#: ETHTOOL_A_HEADER_FLAGS bits
ETHTOOL_FLAG_COMPACT_BITSETS = 1
ETHTOOL_FLAG_OMIT_REPLY = 2
ETHTOOL_FLAG_STATS = 4

#: enum ethtool_stats grp ids (ETHTOOL_STATS_*), as ethtool names them
STATS_GROUPS = {0: "eth-phy", 1: "eth-mac", 2: "eth-ctrl", 3: "rmon", 4: "phy"}
