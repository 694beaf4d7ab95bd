"""``aionlmmap.rtnl``: the rtnetlink family (same module as
:mod:`aionlmmap.families.rtnl`).

>>> from aionlmmap import rtnl
>>> async with rtnl.open() as nl:
...     async for link in nl.links():
...         print(link.ifname)
"""

from __future__ import annotations

import sys as _sys

from .families import rtnl as _rtnl

# One module under two names: attributes set or patched on either are seen
# through both (tests monkeypatching aionlmmap.rtnl.open keep working).
_sys.modules[__name__] = _rtnl
