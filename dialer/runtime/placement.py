"""Which Asterisk node carries which call, when the controller drives several (`[[nodes]]`).

Pure: no IO, driven by the caller with the nodes' loads. A bridge joins channels of one node
only, so everything a call owns (its legs, its bridge, its recordings, a supervisor's snoop on
it) lives on one node: the call's *owner id* (`call-<hex>`, `cmp-<hex>`, `ags-<hex>`,
`mon-<hex>`, the prefix of every object id it names, see `dialer.runtime.ids`) is bound to a
node once, when its first object is created, and every later request naming one of its
objects goes there.

Choosing a node for a new call (`choose_node`): only nodes that are up and have admission
headroom; when the call will need an agent whose leg is already on some node (a campaign call
is bridged with one of its campaign's agents), only the nodes holding such agents, the one with
most agents per call being set up there first; a call placed elsewhere could only be abandoned.
Otherwise the least loaded (fewest calls for its ceiling, then fewest setups, then the node's
order).
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

NODE_LOST = "node_lost: the Asterisk node carrying the call stopped"
"""The cause text of a call given up with its node."""

# Every owner id the runtime makes starts with one of these prefixes (dialer.runtime.ids.Prefix).
_OWNER = re.compile(r"(?:^|[^0-9a-z])((?:call|cmp|ags|mon)-[0-9a-f]{8,32})(?![0-9a-f])")


def owner_in(object_id: str) -> str | None:
    """The owner id an object id (channel, bridge, recording, playback) names, or None when it
    is not named after one of our owners (an inbound caller's channel, Asterisk's own ids)."""
    match = _OWNER.search(object_id)
    return match.group(1) if match else None


@dataclass(frozen=True)
class NodeLoad:
    """One node as placement sees it."""

    name: str
    up: bool
    calls: int
    setups: int
    max_calls: int
    free_lines: int
    """What admission control lets this node set up right now."""


def choose_node(loads: Sequence[NodeLoad], wanted: Mapping[str, int] | None = None) -> str | None:
    """The node a new call goes to, or None when no node can take one now (the call waits).

    `wanted`: node name -> agents the call could be bridged with there (its campaign's agents);
    when given, only those nodes, the one with most agents per call being set up there first."""
    open_nodes = [(order, load) for order, load in enumerate(loads) if load.up and load.free_lines > 0]
    if wanted:
        open_nodes = [(order, load) for order, load in open_nodes if wanted.get(load.name, 0) > 0]
        if not open_nodes:
            return None
        return min(open_nodes, key=lambda item: (-wanted[item[1].name] / (1 + item[1].setups),
                                                 item[1].calls / item[1].max_calls, item[0]))[1].name
    if not open_nodes:
        return None
    return min(open_nodes, key=lambda item: (item[1].calls / item[1].max_calls, item[1].setups, item[0]))[1].name


class NodePlacement(Protocol):
    """What the slices ask about nodes: whether two objects share one (a ready agent's leg and an
    answered call's bridge), and placing an owner with another call's objects."""

    def same_node(self, first: str, second: str) -> bool: ...

    def colocate(self, owner: str, with_object: str) -> str | None: ...

    def lost(self, object_id: str) -> bool: ...


class Placement:
    """Owner ids and objects bound to nodes, and which nodes are up.

    Bindings are kept after a call ends (its recordings are fetched from its node afterwards),
    up to `keep` of them, the oldest forgotten first; a request naming a forgotten owner is tried
    on every node (the caller's fallback)."""

    def __init__(self, nodes: Iterable[str], *, keep: int = 20000) -> None:
        self.nodes: tuple[str, ...] = tuple(nodes)
        if not self.nodes:
            raise ValueError("a placement needs at least one node")
        if len(set(self.nodes)) != len(self.nodes):
            raise ValueError("node names must be unique")
        self._up: dict[str, bool] = dict.fromkeys(self.nodes, False)
        self._bound: OrderedDict[str, str] = OrderedDict()
        self._keep = keep

    # -- nodes ---------------------------------------------------------------------------------
    def is_up(self, node: str) -> bool:
        return self._up[node]

    def set_up(self, node: str, up: bool) -> bool:
        """Mark a node up or down; True when that changed."""
        changed = self._up[node] != up
        self._up[node] = up
        return changed

    @property
    def up_nodes(self) -> tuple[str, ...]:
        return tuple(node for node in self.nodes if self._up[node])

    # -- bindings ------------------------------------------------------------------------------
    def bind(self, key: str, node: str) -> None:
        """Bind an owner id (or an object id not named after an owner) to a node."""
        if node not in self._up:
            raise ValueError(f"unknown node {node!r}")
        self._bound[key] = node
        self._bound.move_to_end(key)
        while len(self._bound) > self._keep:
            self._bound.popitem(last=False)

    def colocate(self, owner: str, with_object: str) -> str | None:
        """Bind `owner` to the node of another call's object (a supervisor's monitor to the call
        it listens to, an inbound call's bridge to the caller's channel); that node, if known."""
        node = self.node_of(with_object)
        if node is not None:
            self.bind(owner, node)
        return node

    def node_of(self, object_id: str) -> str | None:
        """The node an object lives on, as far as known: its own binding (an object not named
        after an owner, seen in a node's events), else its owner's."""
        node = self._bound.get(object_id)
        if node is not None:
            return node
        owner = owner_in(object_id)
        return None if owner is None else self._bound.get(owner)

    def lost(self, object_id: str) -> bool:
        """Whether an object lives on a node that is down (its calls are given up)."""
        node = self.node_of(object_id)
        return node is not None and not self._up[node]

    def owners_on(self, node: str) -> list[str]:
        return [key for key, bound in self._bound.items() if bound == node and owner_in(key) == key]

    def same_node(self, first: str, second: str) -> bool:
        """Whether two objects are known to live on one node (unknown: not the same)."""
        a, b = self.node_of(first), self.node_of(second)
        return a is not None and a == b


class SingleNode:
    """Placement's questions answered for the one node of a single-node dialer (today's default):
    everything is on the same node."""

    def same_node(self, first: str, second: str) -> bool:
        del first, second
        return True

    def colocate(self, owner: str, with_object: str) -> str | None:
        del owner, with_object
        return None

    def lost(self, object_id: str) -> bool:
        del object_id
        return False
