"""netdev (include/uapi/linux/netdev.h, Linux >= 6.5), declared as data:
per-device XDP features, and page pools (6.8+)."""

from __future__ import annotations

from typing import Any

FAMILY: dict[str, Any] = {
    "name": "netdev",
    "protocol": "genetlink",
    "version": 1,
    "attribute-sets": [
        {
            "name": "dev",
            "attributes": [
                {"name": "ifindex", "type": "u32"},
                {"name": "pad", "type": "pad"},
                {"name": "xdp-features", "type": "u64"},
                {"name": "xdp-zc-max-segs", "type": "u32"},
                {"name": "xdp-rx-metadata-features", "type": "u64"},
                {"name": "xsk-features", "type": "u64"},
            ],
        },
        {
            "name": "page-pool",
            "attributes": [
                {"name": "id", "type": "uint"},
                {"name": "ifindex", "type": "u32"},
                {"name": "napi-id", "type": "uint"},
                {"name": "inflight", "type": "uint"},
                {"name": "inflight-mem", "type": "uint"},
                {"name": "detach-time", "type": "uint"},
                {"name": "dmabuf", "type": "u32"},
                {"name": "io-uring", "type": "binary"},
            ],
        },
    ],
    "operations": {
        "list": [
            {"name": "dev-get", "value": 1, "attribute-set": "dev", "do": {"request": {"attributes": ["ifindex"]}}, "dump": {}},
            {"name": "dev-add-ntf", "value": 2, "notify": "dev-get"},
            {"name": "dev-del-ntf", "value": 3, "notify": "dev-get"},
            {"name": "dev-change-ntf", "value": 4, "notify": "dev-get"},
            {"name": "page-pool-get", "value": 5, "attribute-set": "page-pool", "do": {"request": {"attributes": ["id"]}}, "dump": {}},
            {"name": "page-pool-add-ntf", "value": 6, "notify": "page-pool-get"},
            {"name": "page-pool-del-ntf", "value": 7, "notify": "page-pool-get"},
            {"name": "page-pool-change-ntf", "value": 8, "notify": "page-pool-get"},
        ]
    },
    "mcast-groups": {"list": [{"name": "mgmt"}, {"name": "page-pool"}]},
}

#: enum netdev_xdp_act bits
XDP_FEATURE_NAMES = ("basic", "redirect", "ndo-xmit", "xsk-zerocopy", "hw-offload", "rx-sg", "ndo-xmit-sg")
