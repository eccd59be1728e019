"""Lineage queries and the acyclicity rule, as one recursive CTE on SQLite and PostgreSQL.

Edges point from a child voxel to a parent voxel (``voxel_edges``). A new edge child -> parent
is refused when ``child`` is ``parent`` or already one of ``parent``'s ancestors: otherwise the
child would become its own ancestor. The pure function :func:`would_cycle` states the rule on an
in-memory edge list (for the builder and tests); :func:`ancestors` and :func:`descendants` run
the same walk in the database.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from sqlalchemy import literal, select
from sqlalchemy.engine import Connection

from thunderline.voxel.tables import voxel_edges

#: Safety bound of a walk (the graph is acyclic by construction; this guards corrupt data).
MAX_DEPTH = 10_000


@dataclass(frozen=True)
class Edge:
    """One lineage edge found by a walk: ``child`` names ``parent``; ``depth`` from the start."""

    child_id: str
    parent_id: str
    depth: int


def would_cycle(parents_of: Mapping[str, Iterable[str]], child: str, parent: str) -> bool:
    """Whether adding child -> parent to the graph ``parents_of`` makes a cycle."""
    if child == parent:
        return True
    seen: set[str] = set()
    stack = [parent]
    while stack:
        node = stack.pop()
        if node == child:
            return True
        if node in seen:
            continue
        seen.add(node)
        stack.extend(parents_of.get(node, ()))
    return False


def _walk(conn: Connection, start: str, *, up: bool) -> list[Edge]:
    e = voxel_edges.c
    near = e.child_id if up else e.parent_id
    seed = select(
        e.child_id.label("child_id"), e.parent_id.label("parent_id"), literal(1).label("depth")
    ).where(near == start)
    walk = seed.cte("walk", recursive=True)
    step = (
        select(e.child_id, e.parent_id, (walk.c.depth + 1).label("depth"))
        .join(walk, near == (walk.c.parent_id if up else walk.c.child_id))
        .where(walk.c.depth < MAX_DEPTH)
    )
    walk = walk.union(step)
    rows = conn.execute(
        select(walk.c.child_id, walk.c.parent_id, walk.c.depth).order_by(
            walk.c.depth, walk.c.child_id, walk.c.parent_id
        )
    )
    seen: set[tuple[str, str]] = set()
    edges: list[Edge] = []
    for child_id, parent_id, depth in rows:
        if (child_id, parent_id) not in seen:  # keep the shallowest depth of each edge
            seen.add((child_id, parent_id))
            edges.append(Edge(child_id, parent_id, int(depth)))
    return edges


def ancestors(conn: Connection, voxel_id: str) -> list[Edge]:
    """Every edge above ``voxel_id`` (its parents, their parents, ...), shallowest first."""
    return _walk(conn, voxel_id, up=True)


def descendants(conn: Connection, voxel_id: str) -> list[Edge]:
    """Every edge below ``voxel_id`` (its children, their children, ...), shallowest first."""
    return _walk(conn, voxel_id, up=False)


def ancestor_ids(conn: Connection, voxel_id: str) -> set[str]:
    """The ids of every voxel above ``voxel_id`` (its parents, their parents, ...)."""
    return {edge.parent_id for edge in ancestors(conn, voxel_id)}


def descendant_ids(conn: Connection, voxel_id: str) -> set[str]:
    """The ids of every voxel below ``voxel_id`` (its children, their children, ...)."""
    return {edge.child_id for edge in descendants(conn, voxel_id)}
