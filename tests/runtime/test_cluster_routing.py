"""The cluster's ARI client and admission (dialer.runtime.cluster) over fake nodes: which node
each request goes to (`send`: one attempt, where the routing is), lists merged and bound,
objects searched, calls placed. No network."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

import pytest

from dialer.ari.client import AriClient, AriConfig, Params
from dialer.ari.errors import NotFound, request_error
from dialer.runtime.admission import AdmissionLimits
from dialer.runtime.cluster import ClusterAdmission, ClusterAri
from dialer.runtime.ids import Prefix, new_id
from dialer.runtime.lease import Fenced
from dialer.runtime.placement import Placement

pytestmark = pytest.mark.timeout(10)


class FakeNode(AriClient):
    """A node that answers from `held` (ids it has) and records what it was sent."""

    def __init__(self, name: str, held: list[str] | None = None) -> None:
        super().__init__(AriConfig(url=f"http://{name}.invalid/ari", user="u", password="p", app="dialer"))
        self.name = name
        self.held = list(held or [])
        self.sent: list[tuple[str, str]] = []

    async def send(self, method: str, path: str, params: Params | None = None,
                   body: Mapping[str, object] | None = None) -> object:
        self.sent.append((method, path))
        if method == "GET" and path in ("/channels", "/bridges"):
            return [{"id": object_id} for object_id in self.held]
        parts = path.strip("/").split("/")
        if method != "POST" and len(parts) > 1 and parts[1] not in self.held:
            raise request_error(method, path, 404, "not found")
        return {"id": parts[1] if len(parts) > 1 else ""}


def cluster(*nodes: FakeNode, up: tuple[str, ...] | None = None) -> tuple[ClusterAri, ClusterAdmission]:
    placement = Placement(node.name for node in nodes)
    for name in up if up is not None else placement.nodes:
        placement.set_up(name, True)
    admission = ClusterAdmission({node.name: AdmissionLimits(max_calls=4, max_setups=4) for node in nodes}, placement)
    return ClusterAri({node.name: node for node in nodes}, placement, admission), admission


async def test_a_calls_objects_all_go_to_the_node_it_was_admitted_on() -> None:
    a, b = FakeNode("a"), FakeNode("b")
    ari, admission = cluster(a, b)
    first = admission.try_admit(new_id(Prefix.CAMPAIGN_CALL))
    call = new_id(Prefix.CAMPAIGN_CALL)
    slot = admission.try_admit(call)
    assert first is not None and slot is not None
    # The first call went to a (order), the second to b (least loaded).
    await ari.send("POST", f"/channels/{call}-lead", {"endpoint": "PJSIP/x@trunk"})
    b.held.append(f"{call}-lead")
    await ari.send("DELETE", f"/channels/{call}-lead")
    await ari.send("POST", f"/bridges/{call}-bridge")
    assert a.sent == [] and [path for _, path in b.sent] == [
        f"/channels/{call}-lead", f"/channels/{call}-lead", f"/bridges/{call}-bridge"]


async def test_an_agents_leg_goes_to_the_node_with_fewest_agents_and_calls_follow_ready_agents() -> None:
    a, b = FakeNode("a"), FakeNode("b")
    ari, admission = cluster(a, b)
    agents = [new_id(Prefix.AGENT_SESSION) for _ in range(3)]
    for agent in agents:
        await ari.send("POST", f"/channels/{agent}", {"endpoint": "Local/sim1@agent-sim"})
    assert [ari.placement.node_of(agent) for agent in agents] == ["a", "b", "a"]
    call = new_id(Prefix.CAMPAIGN_CALL)
    assert admission.try_admit(call, agents=[agents[1]]) is not None
    assert ari.placement.node_of(call) == "b"
    assert ari.placement.same_node(agents[1], f"{call}-bridge")
    assert not ari.placement.same_node(agents[0], f"{call}-bridge")


async def test_lists_are_every_nodes_together_and_bind_what_each_holds() -> None:
    left = new_id(Prefix.AGENT_SESSION)
    a, b = FakeNode("a", ["1732894012.17"]), FakeNode("b", [left, f"{left}-hold"])
    ari, _ = cluster(a, b)
    listed = await ari.send("GET", "/channels")
    assert isinstance(listed, list)
    assert {item["id"] for item in listed} == {"1732894012.17", left, f"{left}-hold"}
    assert ari.placement.node_of(left) == "b" and ari.placement.node_of("1732894012.17") == "a"
    await ari.send("POST", f"/bridges/{left}-hold/addChannel", {"channel": left})
    assert b.sent[-1] == ("POST", f"/bridges/{left}-hold/addChannel")


async def test_an_object_of_unknown_node_is_looked_for_on_each_node() -> None:
    a, b = FakeNode("a"), FakeNode("b", ["1732894012.17"])
    ari, _ = cluster(a, b)
    await ari.send("DELETE", "/channels/1732894012.17")
    assert a.sent == [("DELETE", "/channels/1732894012.17")] and b.sent == [("DELETE", "/channels/1732894012.17")]
    with pytest.raises(NotFound):
        await ari.send("DELETE", "/channels/1732894099.1")


async def test_subscriptions_go_to_every_node_that_is_up_and_a_node_down_is_skipped() -> None:
    a, b, c = FakeNode("a"), FakeNode("b"), FakeNode("c")
    ari, admission = cluster(a, b, c, up=("a", "c"))
    await ari.send("POST", "/applications/dialer/subscription", {"eventSource": "endpoint:PJSIP/trunk"})
    assert [len(node.sent) for node in (a, b, c)] == [1, 0, 1]
    for _ in range(8):
        assert admission.try_admit(new_id(Prefix.CLICK_TO_CALL)) is not None
    # Four calls each on a and c (their ceiling), none on b (down): the next one waits.
    assert admission.try_admit(new_id(Prefix.CLICK_TO_CALL)) is None
    assert admission.free_lines() == 0
    assert [admission.nodes[name].policy.calls for name in "abc"] == [4, 0, 4]


async def test_admission_waits_for_the_first_node_that_frees() -> None:
    a, b = FakeNode("a"), FakeNode("b")
    _, admission = cluster(a, b)
    slots = [admission.try_admit(new_id(Prefix.CLICK_TO_CALL)) for _ in range(8)]
    assert all(slots)
    call = new_id(Prefix.CLICK_TO_CALL)
    waiting = asyncio.create_task(admission.admit(call))
    await asyncio.sleep(0)
    assert not waiting.done() and admission.waiting == 1
    slot = slots[0]
    assert slot is not None
    slot.release()
    admitted = await asyncio.wait_for(waiting, 2)
    admitted.release()
    assert admission.placement.node_of(call) == "a"


async def test_a_fenced_controller_sends_no_command() -> None:
    a = FakeNode("a", ["1732894012.17"])
    ari, _ = cluster(a)

    def fenced() -> None:
        raise Fenced("lease over")

    ari.fence = fenced
    with pytest.raises(Fenced):
        await ari.hangup("1732894012.17")
    assert a.sent == []
