"""Generic netlink: the controller (nlctrl) and families declared as data.

>>> from aionlmmap.families import genl
>>> async with genl.open() as gn:
...     for family in await gn.families():
...         print(family.name, family.id, family.mcast_groups)
...     print(await gn.request("ethtool", "linkinfo-get", {"header": {"dev-name": "lo"}}))
"""

from __future__ import annotations

from .client import GENL_ID_CTRL, FamilyInfo, GenlClient, Notification, declared, open
from .spec import Attribute, AttributeSet, DecodeCounts, Family, Operation

__all__ = ["open", "GenlClient", "FamilyInfo", "Notification", "GENL_ID_CTRL", "declared", "Family", "AttributeSet", "Attribute", "Operation", "DecodeCounts"]
