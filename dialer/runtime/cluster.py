"""The controller driving several Asterisk nodes (`[[nodes]]` in the configuration file).

Three objects stand where a single-node dialer has one `AriClient`, one `NodeAdmission` and one
`EventStream`, with the same surfaces, so the slices and their runners do not change:

- `ClusterAri`: an `AriClient` whose every REST attempt goes to the node holding the object it
  names (`dialer.runtime.placement`: a call's objects all live on its node). Creating an object
  of an owner not yet placed places the owner (least loaded node). Lists (`GET /channels`,
  `/bridges`, `/recordings/stored`) are the nodes' lists together; subscriptions go to every
  node. An object whose node is not known (a forgotten binding) is looked for on each node.
- `ClusterAdmission`: a `NodeAdmission` per node (its own ceiling); a new call is admitted on
  the node `choose_node` picks, and its owner bound there; the pacer's line cap is the sum of
  the nodes' headroom.
- `ClusterStreams`: one `EventStream` per node into the one dispatcher, under one generation
  counter for the whole cluster. After a node (re)connects, or once a node has been gone for
  `lost_after` seconds, the slices reconcile with the channels and bridges of every node still
  up: the calls of a node that stopped find their channels gone and end, as after an Asterisk
  restart on a single node (rows closed once, recordings archived when the node is back).
  A node whose event connection drops takes no new call at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import structlog

from dialer.ari.client import AriClient, Params
from dialer.ari.dispatch import Dispatcher
from dialer.ari.errors import AriError, AriUnavailable, NotFound
from dialer.ari.events import EventStream, Snapshot
from dialer.ari.models import Event, StasisStart
from dialer.runtime.admission import AdmissionLimits, NodeAdmission, Slot
from dialer.runtime.placement import NodeLoad, Placement, choose_node, owner_in

log = structlog.get_logger(__name__)

# Lists every node answers with its own part of.
_MERGED_LISTS = frozenset({"/channels", "/bridges", "/recordings/stored"})


def _object_of(path: str) -> str | None:
    """The id of the channel, bridge, recording or playback a REST path names, if any."""
    parts = path.strip("/").split("/")
    if parts[0] in ("channels", "bridges", "playbacks") and len(parts) >= 2 and parts[1] != "create":
        return parts[1]
    if parts[0] == "recordings" and len(parts) >= 3:
        return parts[2]
    return None


class ClusterAdmission:
    """Admission control over several nodes: each call is admitted on one of them."""

    def __init__(self, limits: Mapping[str, AdmissionLimits], placement: Placement,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.placement = placement
        self.nodes = {name: NodeAdmission(limits[name], clock) for name in placement.nodes}

    def loads(self, *, admitted: bool = True) -> list[NodeLoad]:
        """Each node's load; `admitted=False` for objects that take no admission slot (an
        agent's leg): every node that is up counts as open."""
        return [
            NodeLoad(name, self.placement.is_up(name), node.policy.calls, node.policy.setups,
                     node.policy.limits.max_calls, node.free_lines() if admitted else 1)
            for name, node in self.nodes.items()
        ]

    @property
    def waiting(self) -> int:
        return sum(node.waiting for node in self.nodes.values())

    def free_lines(self) -> int:
        return sum(node.free_lines() for name, node in self.nodes.items() if self.placement.is_up(name))

    def _wanted(self, agents: Sequence[str]) -> dict[str, int]:
        wanted: dict[str, int] = {}
        for channel_id in agents:
            node = self.placement.node_of(channel_id)
            if node is not None:
                wanted[node] = wanted.get(node, 0) + 1
        return wanted

    def try_admit(self, owner: str | None = None, agents: Sequence[str] = ()) -> Slot | None:
        node = choose_node(self.loads(), self._wanted(agents))
        if node is None:
            return None
        slot = self.nodes[node].try_admit()
        if slot is not None and owner is not None:
            self.placement.bind(owner, node)
        return slot

    async def admit(self, owner: str | None = None, agents: Sequence[str] = ()) -> Slot:
        slot = self.try_admit(owner, agents)
        if slot is not None:
            return slot
        # Every node is full: wait in the queue of the node that frees first, most likely the one
        # with the fewest calls waiting for its ceiling.
        up = [name for name in self.placement.nodes if self.placement.is_up(name)] or list(self.placement.nodes)
        node = min(up, key=lambda name: (self.nodes[name].waiting, self.nodes[name].policy.calls
                                         / self.nodes[name].policy.limits.max_calls))
        slot = await self.nodes[node].admit()
        if owner is not None:
            self.placement.bind(owner, node)
        return slot

    async def probe(self, pings: Mapping[str, Callable[[], Awaitable[object]]], every: float = 1.0) -> None:
        async with asyncio.TaskGroup() as tasks:
            for name, node in self.nodes.items():
                tasks.create_task(node.probe(pings[name], every), name=f"node-probe-{name}")


class ClusterAri(AriClient):
    """One ARI client over several nodes' clients (see the module's docstring)."""

    def __init__(self, nodes: Mapping[str, AriClient], placement: Placement, admission: ClusterAdmission) -> None:
        first = nodes[placement.nodes[0]]
        super().__init__(first.config)
        self.nodes = dict(nodes)
        self.placement = placement
        self.admission = admission

    async def open(self) -> None:
        for node in self.nodes.values():
            await node.open()

    async def close(self) -> None:
        for node in self.nodes.values():
            await node.close()

    def _live(self) -> list[AriClient]:
        up = self.placement.up_nodes
        return [self.nodes[name] for name in up] or [self.nodes[self.placement.nodes[0]]]

    def _place(self, object_id: str) -> str | None:
        """A node for an object being created whose owner is not placed yet (an agent's leg: it
        takes no admission slot): the node holding the fewest owners of its kind (agents spread
        over the nodes, and campaign calls follow them there)."""
        owner = owner_in(object_id)
        kind = (owner or object_id).split("-", 1)[0] + "-"
        loads = [NodeLoad(load.name, load.up, sum(1 for key in self.placement.owners_on(load.name)
                                                   if key.startswith(kind)), 0, 1, 1)
                 for load in self.admission.loads(admitted=False)]
        node = choose_node(loads)
        if node is not None:
            self.placement.bind(owner or object_id, node)
        return node

    async def send(
        self, method: str, path: str, params: Params | None = None, body: Mapping[str, object] | None = None
    ) -> object:
        if method == "GET" and path in _MERGED_LISTS:
            return await self._merged(path, params)
        if path.startswith("/applications/") and method in ("POST", "DELETE"):
            return await self._everywhere(method, path, params, body)
        object_id = _object_of(path)
        if object_id is None and path == "/channels/create" and params is not None:
            object_id = str(params.get("channelId") or "") or None
        if object_id is None:
            return await self._live()[0].send(method, path, params, body)
        node = self.placement.node_of(object_id)
        creating = method == "POST" and (path.count("/") == 2 or path == "/channels/create") \
            and path.startswith(("/channels", "/bridges"))
        if node is None and creating:
            node = self._place(object_id)
        if node is not None:
            return await self.nodes[node].send(method, path, params, body)
        return await self._search(method, path, params, body)

    async def _merged(self, path: str, params: Params | None) -> object:
        """Every node's list together; what each node holds is bound to it on the way (the
        channels and bridges a previous controller left, which this one adopts or ends)."""
        merged: list[object] = []
        for name in self.placement.up_nodes or self.placement.nodes[:1]:
            try:
                part = await self.nodes[name].send("GET", path, params)
            except AriError as error:
                log.warning("node_list_failed", node=name, path=path, error=str(error))
                continue
            if isinstance(part, list):
                merged.extend(part)
                self._bind_listed(name, part)
        return merged

    def _bind_listed(self, node: str, items: list[object]) -> None:
        for item in items:
            object_id = item.get("id") if isinstance(item, dict) else None
            if isinstance(object_id, str) and object_id:
                owner = owner_in(object_id)
                self.placement.bind(owner or object_id, node)

    async def _everywhere(self, method: str, path: str, params: Params | None,
                          body: Mapping[str, object] | None) -> object:
        result: object = None
        failure: AriError | None = None
        for node in self._live():
            try:
                answer = await node.send(method, path, params, body)
            except AriError as error:
                failure = error
                continue
            if result is None:
                result = answer
        if result is None and failure is not None:
            raise failure
        return result

    async def _search(self, method: str, path: str, params: Params | None,
                      body: Mapping[str, object] | None) -> object:
        """An object whose node is not known: the first node that has it answers."""
        missing: NotFound | None = None
        for name in self.placement.up_nodes or self.placement.nodes:
            try:
                return await self.nodes[name].send(method, path, params, body)
            except NotFound as error:
                missing = error
        if missing is not None:
            raise missing
        raise AriUnavailable(f"{method} {path}: no node is up")

    async def stored_recording_file(self, name: str) -> bytes:
        node = self.placement.node_of(name)
        if node is not None:
            return await self.nodes[node].stored_recording_file(name)
        missing: NotFound | None = None
        for name_of_node in self.placement.up_nodes:
            try:
                return await self.nodes[name_of_node].stored_recording_file(name)
            except NotFound as error:
                missing = error
        if missing is not None:
            raise missing
        raise AriUnavailable(f"recording {name}: no node is up")


ConnectedHook = Callable[[int, Snapshot], Awaitable[None]]


class _NodeSink:
    """A node's events into the shared dispatcher, under the cluster's generation; an inbound
    caller's channel (not named by us) is bound to the node it arrived on."""

    def __init__(self, node: str, streams: ClusterStreams) -> None:
        self.node = node
        self.streams = streams

    def deliver(self, event: Event, generation: int) -> None:
        del generation
        if isinstance(event, StasisStart) and owner_in(event.channel.id) is None:
            self.streams.placement.bind(event.channel.id, self.node)
        self.streams.dispatcher.deliver(event, self.streams.generation)


class ClusterStreams:
    """Every node's event connection, and the reconciliations node arrivals and losses call for."""

    def __init__(self, ari: ClusterAri, dispatcher: Dispatcher, on_connected: ConnectedHook, *,
                 lost_after: float = 3.0, watch_every: float = 0.5, start_grace: float = 5.0) -> None:
        self.ari = ari
        self.placement = ari.placement
        self.dispatcher = dispatcher
        self._on_connected = on_connected
        self._lost_after = lost_after
        self._watch_every = watch_every
        self._start_grace = start_grace
        self.generation = 0
        self._streams = {
            name: EventStream(client, _NodeSink(name, self), on_connected=self._hook(name))
            for name, client in ari.nodes.items()
        }
        self._down_since: dict[str, float] = {}
        self._ever_connected: set[str] = set()
        self._started_at: float | None = None
        self._lock = asyncio.Lock()
        self._changed = asyncio.Condition()
        self._hooked = False
        self._stopping = False

    @property
    def connected(self) -> bool:
        """At least one node takes calls."""
        return any(stream.connected for stream in self._streams.values())

    def node_connected(self, node: str) -> bool:
        return self._streams[node].connected

    def _hook(self, node: str) -> Callable[[int, Snapshot], Awaitable[None]]:
        async def connected(node_generation: int, snapshot: Snapshot) -> None:
            del node_generation
            self._down_since.pop(node, None)
            self._ever_connected.add(node)
            if self.placement.set_up(node, True):
                log.info("node_up", node=node)
            if not self._hooked and not self._start_over():
                return  # the first reconciliation waits for every node (or the start's grace)
            await self._reconcile(snapshot, reason=f"{node} connected")
        return connected

    async def _reconcile(self, snapshot: Snapshot | None, *, reason: str) -> None:
        """Every slice reconciles with what the nodes still up hold (one at a time)."""
        async with self._lock:
            self.generation += 1
            channels = await self.ari.list_channels()
            bridges = await self.ari.list_bridges()
            application = snapshot.application if snapshot is not None else None
            if application is None:
                application = await self.ari.get_application()
            log.info("cluster_reconciled", reason=reason, generation=self.generation, channels=len(channels),
                     nodes=list(self.placement.up_nodes))
            await self._on_connected(self.generation, Snapshot(application, channels, bridges))
        async with self._changed:
            self._hooked = True
            self._changed.notify_all()

    def _start_over(self) -> bool:
        """At start, every node has connected, or `start_grace` has passed: the slices may
        reconcile (before that, a leg on a node not connected yet would look gone)."""
        if self._ever_connected == set(self._streams):
            return True
        return self._started_at is not None and time.monotonic() - self._started_at >= self._start_grace

    async def wait_connected(self, after_generation: int = 0) -> int:
        async with self._changed:
            await self._changed.wait_for(lambda: self.connected and self._hooked and self.generation > after_generation)
            return self.generation

    async def run(self) -> None:
        self._started_at = time.monotonic()
        async with asyncio.TaskGroup() as tasks:
            for name, stream in self._streams.items():
                tasks.create_task(stream.run(), name=f"ari-events-{name}")
            tasks.create_task(self._watch(), name="ari-nodes-watch")

    async def _watch(self) -> None:
        """A node whose events stopped takes no new call at once; after `lost_after` seconds its
        calls are given up (the slices reconcile without its channels)."""
        while not self._stopping:
            await asyncio.sleep(self._watch_every)
            now = time.monotonic()
            if not self._hooked:
                if self.connected and self._start_over():
                    with contextlib.suppress(AriError):
                        await self._reconcile(None, reason="start (a node is not connected)")
                continue
            for name, stream in self._streams.items():
                if stream.connected or (not self.placement.is_up(name) and name not in self._down_since):
                    continue
                since = self._down_since.setdefault(name, now)
                if self.placement.set_up(name, False):
                    log.warning("node_unreachable", node=name)
                if now - since >= self._lost_after and since > 0:
                    self._down_since[name] = 0.0  # given up once
                    log.error("node_lost", node=name, calls=len(self.placement.owners_on(name)))
                    with contextlib.suppress(AriError):
                        await self._reconcile(None, reason=f"{name} lost")

    async def stop(self) -> None:
        """Close every node's event connection; `run()` returns."""
        self._stopping = True
        for stream in self._streams.values():
            await stream.stop()


def node_pings(ari: ClusterAri) -> dict[str, Callable[[], Awaitable[Any]]]:
    return {name: client.asterisk_info for name, client in ari.nodes.items()}
