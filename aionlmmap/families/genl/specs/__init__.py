"""Family declarations (data, in the shape of the kernel's YNL specs)."""

from __future__ import annotations

from .ethtool import FAMILY as ETHTOOL
from .netdev import FAMILY as NETDEV
from .nlctrl import FAMILY as NLCTRL

__all__ = ["NLCTRL", "ETHTOOL", "NETDEV", "ALL"]

ALL = (NLCTRL, ETHTOOL, NETDEV)
