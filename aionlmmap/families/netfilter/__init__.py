"""Netfilter over netlink (NETLINK_NETFILTER): the nfnetlink header and
batches (``nfnetlink``), the packet fields NFQUEUE and NFLOG share
(``nfpacket``), and one module or package per subsystem: ``nfqueue``,
``nflog``, ``nftables``, ``conntrack``.

Importing this package imports none of them; import the one you use:

>>> from aionlmmap.families.netfilter import nfqueue
>>> async with nfqueue.open(1) as queue:
...     async for packet in queue:
...         packet.accept()
"""
