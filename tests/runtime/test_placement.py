"""Placement of calls on a cluster's nodes (pure): owner ids, choosing a node, bindings."""

from __future__ import annotations

import pytest

from dialer.runtime.ids import Prefix, new_id
from dialer.runtime.placement import NodeLoad, Placement, SingleNode, choose_node, owner_in
from dialer.settings import AriNode, SettingsError, parse_config


def load(name: str, *, up: bool = True, calls: int = 0, setups: int = 0, max_calls: int = 40,
         free: int = 8) -> NodeLoad:
    return NodeLoad(name, up, calls, setups, max_calls, free)


@pytest.mark.parametrize("prefix", [Prefix.CLICK_TO_CALL, Prefix.CAMPAIGN_CALL, Prefix.AGENT_SESSION, Prefix.MONITOR])
def test_every_object_of_an_owner_names_it(prefix: Prefix) -> None:
    owner = new_id(prefix)
    for object_id in (owner, f"{owner}-lead", f"{owner}-lead;2", f"{owner}-bridge", f"{owner}-snoop-2",
                      f"{owner}-recording", f"{owner}-recording-agent", f"rec-{owner}"):
        assert owner_in(object_id) == owner


@pytest.mark.parametrize("object_id", ["1732894012.17", "", "call-", "call-xyz", "lead-0123456789abcdef",
                                       "dsp_0123456789abcdef", "cmp-0123456"])
def test_objects_not_named_after_an_owner(object_id: str) -> None:
    assert owner_in(object_id) is None


def test_no_node_up_or_none_with_room_means_wait() -> None:
    assert choose_node([]) is None
    assert choose_node([load("a", up=False), load("b", up=False)]) is None
    assert choose_node([load("a", free=0), load("b", up=False)]) is None


def test_least_loaded_for_its_ceiling_then_fewest_setups_then_order() -> None:
    assert choose_node([load("a", calls=10), load("b", calls=5)]) == "b"
    # 10 of 40 is more loaded than 10 of 80.
    assert choose_node([load("a", calls=10), load("b", calls=10, max_calls=80)]) == "b"
    assert choose_node([load("a", calls=5, setups=3), load("b", calls=5, setups=1)]) == "b"
    assert choose_node([load("a", calls=5), load("b", calls=5)]) == "a"


def test_a_node_down_or_full_is_skipped() -> None:
    assert choose_node([load("a", up=False), load("b", calls=30)]) == "b"
    assert choose_node([load("a", free=0), load("b", calls=30)]) == "b"


def test_calls_go_only_where_the_campaigns_agents_are() -> None:
    loads = [load("a"), load("b", calls=20)]
    assert choose_node(loads, {"b": 1}) == "b"
    # The agents' node is full or down: the call waits (elsewhere no agent could take it).
    assert choose_node([load("a"), load("b", free=0)], {"b": 3}) is None
    assert choose_node([load("a"), load("b", up=False)], {"b": 3}) is None
    assert choose_node([load("a"), load("b")], {"c": 2}) is None
    # More agents per call being set up wins: 3 agents with 2 ringing beats 1 agent with none.
    assert choose_node([load("a", setups=0), load("b", setups=1)], {"a": 1, "b": 3}) == "b"
    assert choose_node([load("a", setups=0), load("b", setups=2)], {"a": 1, "b": 3}) == "a"
    # No agent known anywhere (none logged in, or legs not placed yet): the least loaded.
    assert choose_node([load("a", calls=3), load("b")], {}) == "b"


def test_bindings_follow_the_owner_and_its_objects() -> None:
    placement = Placement(["a", "b"])
    call = new_id(Prefix.CAMPAIGN_CALL)
    placement.bind(call, "b")
    assert placement.node_of(f"{call}-lead") == "b"
    assert placement.node_of(f"{call}-recording") == "b"
    assert placement.node_of("1732894012.17") is None
    placement.bind("1732894012.17", "a")
    assert placement.node_of("1732894012.17") == "a"
    monitor = new_id(Prefix.MONITOR)
    assert placement.colocate(monitor, f"{call}-bridge") == "b"
    assert placement.same_node(f"{monitor}-supervisor", f"{call}-bridge")
    assert not placement.same_node(f"{monitor}-supervisor", "1732894012.17")
    assert placement.colocate(new_id(Prefix.MONITOR), "unknown") is None
    assert set(placement.owners_on("b")) == {call, monitor}
    assert placement.owners_on("a") == []


def test_unknown_objects_are_not_on_the_same_node() -> None:
    placement = Placement(["a"])
    assert not placement.same_node("x", "y")
    assert SingleNode().same_node("x", "y")
    assert SingleNode().colocate("x", "y") is None


def test_nodes_up_and_down() -> None:
    placement = Placement(["a", "b"])
    assert placement.up_nodes == ()
    assert placement.set_up("a", True)
    assert not placement.set_up("a", True)
    assert placement.up_nodes == ("a",)
    assert placement.set_up("a", False)
    assert not placement.is_up("a")


def test_oldest_bindings_are_forgotten_past_the_limit() -> None:
    placement = Placement(["a"], keep=2)
    owners = [new_id(Prefix.CLICK_TO_CALL) for _ in range(3)]
    for owner in owners:
        placement.bind(owner, "a")
    assert placement.node_of(owners[0]) is None
    assert placement.node_of(owners[2]) == "a"


def test_placement_refuses_bad_node_lists() -> None:
    with pytest.raises(ValueError, match="at least one"):
        Placement([])
    with pytest.raises(ValueError, match="unique"):
        Placement(["a", "a"])
    with pytest.raises(ValueError, match="unknown node"):
        Placement(["a"]).bind("call-0123456789abcdef", "b")


def test_nodes_in_the_configuration_file(tmp_path: object) -> None:
    values = parse_config({"nodes": [
        {"name": "node1", "ari_url": "http://10.0.0.11:8088/ari", "max_calls": 60},
        {"name": "node2", "ari_url": "http://10.0.0.12:8088/ari", "ari_user": "ops", "ari_password": "pw-9f3c"},
    ]})
    assert values["nodes"] == (
        AriNode("node1", "http://10.0.0.11:8088/ari", max_calls=60),
        AriNode("node2", "http://10.0.0.12:8088/ari", ari_user="ops", ari_password="pw-9f3c"),
    )
    assert "pw-9f3c" not in repr(values["nodes"])


@pytest.mark.parametrize(("table", "message"), [
    ({"name": "n"}, "needs at least name and ari_url"),
    ({"name": "n", "ari_url": "10.0.0.1:8088"}, "must start with http"),
    ({"name": "n", "ari_url": "http://h/ari", "max_calls": 0}, "must be positive"),
    ({"name": "n", "ari_url": "http://h/ari", "port": 1}, "unknown key 'port'"),
    ({"name": "n", "ari_url": "http://h/ari", "max_calls": "many"}, "must be a whole number"),
])
def test_bad_nodes_are_refused_in_one_sentence(table: dict[str, object], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        parse_config({"nodes": [table]})
