"""A minimal writer of OLE2 compound files ([MS-CFB] version 3), to lift embedded storages out.

An object embedded in a Word, Excel or PowerPoint 97-2003 file is an OLE *storage* inside the
host's compound file (``ObjectPool/_1234`` in a ``.doc``, ``MBD0001A2B3`` in an ``.xls``): an
embedded workbook is the storage holding ``Workbook``, ``SummaryInformation``... To make it
a child artifact it must become a compound file of its own, with that storage as its root:
what Office itself writes when the object is saved out. olefile reads compound files but
cannot write them, and no maintained Python writer exists, so this module writes them:
512-byte sectors, the mini stream for streams under 4096 bytes, a FAT (with DIFAT sectors past
109 FAT sectors), and each storage's children as a balanced binary tree ordered as [MS-CFB]
2.6.4 says (shorter names first, then by upper-cased name). Timestamps are zero; CLSIDs and
the tree of storages and streams are kept.
"""

from __future__ import annotations

import struct
import uuid
from dataclasses import dataclass, field
from typing import Any

_SECTOR = 512
_MINI = 64
_CUTOFF = 4096
_FREESECT = 0xFFFFFFFF
_ENDOFCHAIN = 0xFFFFFFFE
_FATSECT = 0xFFFFFFFD
_DIFSECT = 0xFFFFFFFC
_NOSTREAM = 0xFFFFFFFF
_STORAGE, _STREAM, _ROOT = 1, 2, 5
_MAGIC = bytes.fromhex("D0CF11E0A1B11AE1")


@dataclass
class Node:
    """A storage (``data`` None) or a stream of the tree to write."""

    name: str
    data: bytes | None = None
    clsid: bytes = b"\x00" * 16
    children: list[Node] = field(default_factory=list)
    # set while writing
    sid: int = 0
    start: int = _ENDOFCHAIN


def _key(node: Node) -> tuple[int, str]:
    return (len(node.name), node.name.upper())


def _clsid(text: str) -> bytes:
    """The 16 bytes of a directory entry's CLSID from olefile's string form."""
    if not text:
        return b"\x00" * 16
    try:
        return uuid.UUID(text).bytes_le
    except ValueError:
        return b"\x00" * 16


def read_tree(ole: Any, path: list[str], max_bytes: int) -> Node:
    """The storage at ``path`` of an open olefile, streams read, as a :class:`Node` tree.

    Raises:
        ValueError: the streams add up to more than ``max_bytes``.
    """
    budget = [max_bytes]

    def walk(entry: Any, where: list[str]) -> Node:
        node = Node(name=entry.name, clsid=_clsid(entry.clsid))
        for kid in sorted(entry.kids, key=lambda k: k.name):
            here = [*where, kid.name]
            if kid.entry_type == _STORAGE:
                node.children.append(walk(kid, here))
            elif kid.entry_type == _STREAM:
                budget[0] -= kid.size
                if budget[0] < 0:
                    raise ValueError(f"the object's streams exceed {max_bytes} bytes")
                with ole.openstream(here) as handle:
                    node.children.append(Node(name=kid.name, data=handle.read()))
        return node

    entry = ole.direntries[ole._find(path)] if path else ole.root
    return walk(entry, path)


def _balanced(nodes: list[Node]) -> tuple[int, list[tuple[Node, int, int]]]:
    """The root sid of a balanced tree over ``nodes`` (sorted), and (node, left, right)."""
    links: list[tuple[Node, int, int]] = []

    def build(lo: int, hi: int) -> int:
        if lo >= hi:
            return _NOSTREAM
        mid = (lo + hi) // 2
        left = build(lo, mid)
        right = build(mid + 1, hi)
        links.append((nodes[mid], left, right))
        return nodes[mid].sid

    return build(0, len(nodes)), links


def _entry(
    name: str, kind: int, left: int, right: int, child: int, clsid: bytes, start: int, size: int
) -> bytes:
    raw = name.encode("utf-16-le")[:62]
    return struct.pack(
        "<64sHBBIII16sIQQIQ",
        raw + b"\x00\x00",
        len(raw) + 2,
        kind,
        1,  # black
        left,
        right,
        child,
        clsid,
        0,
        0,
        0,
        start,
        size,
    )


def write(root: Node) -> bytes:
    """The compound file (version 3) whose root storage is ``root``."""
    order: list[Node] = []

    def number(node: Node) -> None:
        node.sid = len(order)
        order.append(node)
        for kid in node.children:
            number(kid)

    number(root)
    # streams: small ones in the mini stream, the others in sectors of their own
    mini = bytearray()
    minifat: list[int] = []
    big: list[Node] = []
    for node in order[1:]:
        if node.data is None or not node.data:
            continue
        if len(node.data) < _CUTOFF:
            first = len(minifat)
            count = -(-len(node.data) // _MINI)
            node.start = first
            minifat.extend(range(first + 1, first + count))
            minifat.append(_ENDOFCHAIN)
            mini += node.data + b"\x00" * (count * _MINI - len(node.data))
        else:
            big.append(node)
    sectors: list[bytes] = []
    fat: list[int] = []

    def place(data: bytes) -> int:
        if not data:
            return _ENDOFCHAIN
        first = len(sectors)
        count = -(-len(data) // _SECTOR)
        padded = data + b"\x00" * (count * _SECTOR - len(data))
        sectors.extend(padded[i : i + _SECTOR] for i in range(0, len(padded), _SECTOR))
        fat.extend(range(first + 1, first + count))
        fat.append(_ENDOFCHAIN)
        return first

    for node in big:
        node.start = place(node.data or b"")
    root.start = place(bytes(mini))
    minifat_bytes = b"".join(struct.pack("<I", v) for v in minifat)
    minifat_bytes += b"\xff" * ((-len(minifat_bytes)) % _SECTOR)
    minifat_start = place(minifat_bytes)
    minifat_count = len(minifat_bytes) // _SECTOR
    # directory: every storage's children as a balanced tree
    links: dict[int, tuple[int, int]] = {}
    child_of: dict[int, int] = {}
    for node in order:
        if node.data is None:
            kids = sorted(node.children, key=_key)
            top, made = _balanced(kids)
            child_of[node.sid] = top
            for kid, left, right in made:
                links[kid.sid] = (left, right)
    entries = []
    for node in order:
        left, right = links.get(node.sid, (_NOSTREAM, _NOSTREAM))
        if node is root:
            kind, size, start = _ROOT, len(mini), root.start
        elif node.data is None:
            kind, size, start = _STORAGE, 0, 0
        else:
            kind, size, start = _STREAM, len(node.data), node.start
        entries.append(
            _entry(
                "Root Entry" if node is root else node.name,
                kind,
                left,
                right,
                child_of.get(node.sid, _NOSTREAM),
                node.clsid if node.data is None else b"\x00" * 16,
                start,
                size,
            )
        )
    empty = struct.pack(
        "<64sHBBIII16sIQQIQ", b"", 0, 0, 0, _NOSTREAM, _NOSTREAM, _NOSTREAM, b"", 0, 0, 0, 0, 0
    )
    while len(entries) % (_SECTOR // 128):
        entries.append(empty)
    dir_start = place(b"".join(entries))
    # the FAT covers every sector, itself and the DIFAT sectors included
    content = len(sectors)
    n_fat = n_difat = 0
    while True:
        n_difat = max(0, -(-(n_fat - 109) // 127))
        if content + n_fat + n_difat <= n_fat * (_SECTOR // 4):
            break
        n_fat += 1
    fat_sectors = list(range(content, content + n_fat))
    difat_sectors = list(range(content + n_fat, content + n_fat + n_difat))
    fat.extend(_FATSECT for _ in fat_sectors)
    fat.extend(_DIFSECT for _ in difat_sectors)
    fat.extend(_FREESECT for _ in range(n_fat * (_SECTOR // 4) - len(fat)))
    fat_bytes = struct.pack(f"<{len(fat)}I", *fat)
    sectors.extend(fat_bytes[i : i + _SECTOR] for i in range(0, len(fat_bytes), _SECTOR))
    extra = fat_sectors[109:]
    for k, sect in enumerate(difat_sectors):
        chunk = extra[k * 127 : (k + 1) * 127]
        chunk += [_FREESECT] * (127 - len(chunk))
        nxt = difat_sectors[k + 1] if k + 1 < len(difat_sectors) else _ENDOFCHAIN
        sectors.append(struct.pack("<128I", *chunk, nxt))
        assert len(sectors) - 1 == sect
    head_difat = fat_sectors[:109] + [_FREESECT] * (109 - min(len(fat_sectors), 109))
    header = struct.pack(
        "<8s16sHHHHH6sIIIIIIIII109I",
        _MAGIC,
        b"\x00" * 16,
        0x003E,
        0x0003,
        0xFFFE,
        9,
        6,
        b"\x00" * 6,
        0,
        n_fat,
        dir_start,
        0,
        _CUTOFF,
        minifat_start if minifat_count else _ENDOFCHAIN,
        minifat_count,
        difat_sectors[0] if difat_sectors else _ENDOFCHAIN,
        n_difat,
        *head_difat,
    )
    return header + b"".join(sectors)


__all__ = ["Node", "read_tree", "write"]
