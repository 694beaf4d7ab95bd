"""nlctrl, the generic netlink controller (include/uapi/linux/genetlink.h),
declared as data. Its family id is fixed: GENL_ID_CTRL (0x10)."""

from __future__ import annotations

from typing import Any

FAMILY: dict[str, Any] = {
    "name": "nlctrl",
    "protocol": "genetlink",
    "version": 2,
    "attribute-sets": [
        {
            "name": "ctrl-attrs",
            "attributes": [
                {"name": "family-id", "type": "u16"},
                {"name": "family-name", "type": "string"},
                {"name": "version", "type": "u32"},
                {"name": "hdrsize", "type": "u32"},
                {"name": "maxattr", "type": "u32"},
                {"name": "ops", "type": "indexed-array", "sub-type": "nest", "nested-attributes": "op-attrs"},
                {"name": "mcast-groups", "type": "indexed-array", "sub-type": "nest", "nested-attributes": "mcast-group-attrs"},
                # policy: a nest per policy index, in it a nest per attribute
                # type, then policy-attrs (decoded by GenlClient.policy)
                {"name": "policy", "type": "binary"},
                {"name": "op-policy", "type": "binary"},
                {"name": "op", "type": "u32"},
            ],
        },
        {"name": "op-attrs", "attributes": [{"name": "id", "type": "u32"}, {"name": "flags", "type": "u32"}]},
        {"name": "mcast-group-attrs", "attributes": [{"name": "name", "type": "string"}, {"name": "id", "type": "u32"}]},
        {
            "name": "policy-attrs",
            "attributes": [
                {"name": "type", "type": "u32"},
                {"name": "min-value-s", "type": "s64"},
                {"name": "max-value-s", "type": "s64"},
                {"name": "min-value-u", "type": "u64"},
                {"name": "max-value-u", "type": "u64"},
                {"name": "min-length", "type": "u32"},
                {"name": "max-length", "type": "u32"},
                {"name": "policy-idx", "type": "u32"},
                {"name": "policy-maxtype", "type": "u32"},
                {"name": "bitfield32-mask", "type": "u32"},
                {"name": "pad", "type": "pad"},
                {"name": "mask", "type": "u64"},
            ],
        },
        {"name": "op-policy-attrs", "attributes": [{"name": "do", "type": "u32"}, {"name": "dump", "type": "u32"}]},
    ],
    "operations": {
        "list": [
            {"name": "newfamily", "value": 1, "attribute-set": "ctrl-attrs", "event": True},
            {"name": "delfamily", "value": 2, "attribute-set": "ctrl-attrs", "event": True},
            {"name": "getfamily", "value": 3, "attribute-set": "ctrl-attrs", "reply-value": 1, "do": {}, "dump": {}},
            {"name": "newmcast-grp", "value": 7, "attribute-set": "ctrl-attrs", "event": True},
            {"name": "delmcast-grp", "value": 8, "attribute-set": "ctrl-attrs", "event": True},
            {"name": "getpolicy", "value": 10, "attribute-set": "ctrl-attrs", "dump": {}},
        ]
    },
    "mcast-groups": {"list": [{"name": "notify"}]},
}

#: enum netlink_attribute_type (include/uapi/linux/netlink.h), for policies
POLICY_TYPE_NAMES = (
    "invalid", "flag", "u8", "u16", "u32", "u64", "s8", "s16", "s32", "s64", "binary", "string",
    "nul-string", "nested", "nested-array", "bitfield32", "sint", "uint",
)  # fmt: skip
