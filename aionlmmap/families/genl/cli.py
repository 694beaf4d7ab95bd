"""``aionlmmap dump genl-families [--json]`` (``genl ctrl list``) and
``aionlmmap ethtool DEV [--json]``."""

from __future__ import annotations

import argparse
import json
from typing import TextIO

from .client import open as _open
from .ethtool import Ethtool

__all__ = ["dump_families", "ethtool"]


async def dump_families(args: argparse.Namespace, out: TextIO) -> int:
    async with _open(netns=args.netns) as gn:
        families = await gn.families()
    if args.json:
        out.write(json.dumps([family.to_json() for family in families], separators=(",", ":")) + "\n")
    else:
        for family in families:
            out.write(f"Name: {family.name}\n\tID: {family.id:#x}  Version: {family.version:#x}  header size: {family.hdrsize}  max attribs: {family.maxattr}\n")
            if family.ops:
                out.write("\tcommands supported:\n")
                for index, (op, flags) in enumerate(family.ops, 1):
                    out.write(f"\t\t#{index}:  ID-{op:#x}  flags {flags:#x}\n")
            if family.mcast_groups:
                out.write("\tmulticast groups:\n")
                for index, (name, group) in enumerate(family.mcast_groups.items(), 1):
                    out.write(f"\t\t#{index}:  ID-{group:#x}  name: {name}\n")
            out.write("\n")
    out.flush()
    return 0


async def ethtool(args: argparse.Namespace, out: TextIO) -> int:
    async with _open(netns=args.netns) as gn:
        info = await Ethtool(gn).show(args.device)
    item = info.to_json()
    if args.json:
        out.write(json.dumps(item, separators=(",", ":")) + "\n")
    else:
        out.write(f"Settings for {item['ifname']}:\n")
        for key, value in item.items():
            if key in ("ifname", "features", "rings", "channels", "stats"):
                continue
            out.write(f"\t{key}: {value}\n")
        for section in ("rings", "channels"):
            if section in item:
                out.write(f"{section}:\n" + "".join(f"\t{key}: {value}\n" for key, value in item[section].items()))
        if "features" in item:
            out.write("features:\n" + "".join(f"\t{name}: {'on' if state['active'] else 'off'}{' [fixed]' if state['fixed'] else ''}\n" for name, state in item["features"].items()))
    out.flush()
    return 0
