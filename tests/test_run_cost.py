"""Which graphs' runs have a first turn small enough for the starting thread: pure, no threads."""

from actors.blocks import default_registry
from actors.dag import Graph
from actors.run_cost import MAX_BLOCKS, MAX_EXPRESSION, small_first_turn
from tests.helpers import START, edge

REGISTRY = default_registry()


def small_graph(g):
    return small_first_turn(g, lambda kind: kind in REGISTRY and REGISTRY[kind].inline)


def http(block_id="call", url="http://127.0.0.1:1/"):
    return {"id": block_id, "type": "http", "config": {"url": url}}


def graph(*blocks, edges=None):
    blocks = [{"config": {}, **b} for b in (START,) + blocks]
    if edges is None:  # a chain, in the order given
        edges = [edge(a["id"], b["id"]) for a, b in zip(blocks, blocks[1:])]
    return Graph.build(blocks, edges)


def condition(expression):
    return {"id": "check", "type": "condition", "config": {"conditions": [{"id": "yes", "expression": expression}]}}


def response(data, block_id="out"):
    return {"id": block_id, "type": "response", "config": {"data": data}}


def test_the_usual_small_graphs_are_small():
    assert small_graph(graph())
    assert small_graph(graph(condition("start.n > 5"), response({"n": "{{ start.n }}"}),
                             edges=[edge("start", "check"), edge("check", "out", "yes")]))
    assert small_graph(graph(condition("len(start.name) > 2 and start.ok"), response("hello {{ start.name }}")))


def test_too_many_blocks_is_not():
    chain = [response(i, f"b{i}") for i in range(MAX_BLOCKS - 1)]
    assert small_graph(graph(*chain))
    assert not small_graph(graph(*chain, response(0, "one_more")))


def test_a_block_with_io_is_only_started_and_what_follows_it_is_not_counted():
    assert small_graph(graph(http()))
    assert small_graph(graph({"id": "c", "type": "code", "config": {"code": "result = 1"}}))
    # What comes after it runs on a pooled thread, with its news: not part of the first turn.
    after = [response(["{{ variables }}"] * 64, f"r{i}") for i in range(MAX_BLOCKS)]
    assert small_graph(graph(http(), *after))


def test_starting_too_many_blocks_is_not():
    fan = [http(f"call{i}") for i in range(MAX_BLOCKS - 1)]
    edges = [edge("start", b["id"]) for b in fan]
    assert small_graph(graph(*fan, edges=edges))
    fan.append(http("one_more"))
    assert not small_graph(graph(*fan, edges=edges + [edge("start", "one_more")]))


def test_a_started_blocks_config_counts_as_rendered():
    assert not small_graph(graph(http(url="http://x/" + "{{ variables }}" * 16)))


def test_a_triggers_block_is_not():
    webhook = {"id": "hook", "type": "webhook", "config": {}}
    assert not small_graph(graph(webhook, edges=[]))


def test_templates_that_could_grow_a_value_past_the_bound_are_not():
    assert small_graph(graph(response(["{{ variables }}"] * 4)))
    # Sixteen copies of the body is already more than the bound ...
    assert not small_graph(graph(response(["{{ variables }}"] * 16)))
    # ... and so is a value copied a few times, then that copy a few times more.
    assert not small_graph(graph(response(["{{ variables }}"] * 4, "a"), response(["{{ a }}"] * 4, "b")))


def test_conditions_that_loop_multiply_or_are_templates_are_not():
    assert not small_graph(graph(condition("len([x for x in start.items]) > 1")))
    assert not small_graph(graph(condition("len(start.s * 1000) > 1")))
    assert not small_graph(graph(condition("2 ** 30 > 1")))
    assert not small_graph(graph(condition("{{ start.rule }}")))
    assert not small_graph(graph(condition("1 == 1 or " + "x" * MAX_EXPRESSION)))
    # Many sums: each holds the ones before it.
    assert not small_graph(graph(condition(" + ".join(["str(start)"] * 12) + " != ''")))


def test_an_invalid_expression_does_not_make_a_run_large():
    # It fails at once on any thread, as the run's own error.
    assert small_graph(graph(condition("start.n >")))
    # Nor does it hide what the conditions before it could make.
    heavy = {"id": "heavy", "expression": " + ".join(["str(start)"] * 12) + " != ''"}
    check = condition("start.n >")
    check["config"]["conditions"].insert(0, heavy)
    assert not small_graph(graph(check))
