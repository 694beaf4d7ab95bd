"""Netlink families built on the ring: ``rtnl`` (links, addresses, routes,
neighbours, rules), and the netfilter families.

>>> from aionlmmap.families import rtnl
>>> async with rtnl.open() as nl:
...     async for route in nl.routes():
...         print(route.to_json())
"""
