"""Scheduling rules as pure functions: no threads, no I/O."""

from actors import dag

COND = "condition"


def graph(blocks, edges):
    """blocks: {id: type}; edges: (source, target[, handle])."""
    return dag.Graph.build(
        [{"id": b, "type": t, "config": {}} for b, t in blocks.items()],
        [{"source": e[0], "target": e[1], "source_handle": e[2] if len(e) > 2 else None} for e in edges])


def run(g, entries=("s",)):
    state = dag.RunState(g)
    ready, skipped = dag.start(state, entries)
    return state, ready, skipped


def test_fan_out_then_fan_in():
    g = graph({"s": "starter", "a": "x", "b": "x", "c": "x", "j": "x"},
              [("s", "a"), ("s", "b"), ("s", "c"), ("a", "j"), ("b", "j"), ("c", "j")])
    state, ready, skipped = run(g)
    assert ready == ["s"] and skipped == []
    assert sorted(dag.finished(state, "s", dag.COMPLETED, {})[0]) == ["a", "b", "c"]
    assert dag.finished(state, "a", dag.COMPLETED, 1) == ([], [])
    assert dag.finished(state, "c", dag.COMPLETED, 3) == ([], [])
    assert dag.finished(state, "b", dag.COMPLETED, 2) == (["j"], [])
    assert not dag.is_over(state)
    dag.finished(state, "j", dag.COMPLETED, "done")
    assert dag.is_over(state)
    assert dag.run_output(state, []) == {"j": "done"}


def test_diamond_runs_join_once():
    g = graph({"s": "starter", "l": "x", "r": "x", "j": "x"}, [("s", "l"), ("s", "r"), ("l", "j"), ("r", "j")])
    state, _, _ = run(g)
    dag.finished(state, "s", dag.COMPLETED, {})
    assert dag.finished(state, "l", dag.COMPLETED, 1) == ([], [])
    assert dag.finished(state, "r", dag.COMPLETED, 2) == (["j"], [])


def test_condition_skips_untaken_branch_and_propagates_into_join():
    g = graph({"s": "starter", "c": COND, "yes": "x", "no": "x", "no2": "x", "j": "x"},
              [("s", "c"), ("c", "yes", "big"), ("c", "no", "else"), ("no", "no2"),
               ("yes", "j"), ("no2", "j")])
    state, _, _ = run(g)
    dag.finished(state, "s", dag.COMPLETED, {})
    ready, skipped = dag.finished(state, "c", dag.COMPLETED, {"branch": "big"})
    assert ready == ["yes"] and skipped == ["no", "no2"]
    # the join still runs: one live edge (from yes) is enough
    assert dag.finished(state, "yes", dag.COMPLETED, 1) == (["j"], [])


def test_join_skipped_when_no_incoming_edge_is_live():
    g = graph({"s": "starter", "c": COND, "a": "x", "b": "x", "j": "x", "after": "x"},
              [("s", "c"), ("c", "a", "x"), ("c", "b", "y"), ("a", "j"), ("b", "j"), ("j", "after")])
    state, _, _ = run(g)
    dag.finished(state, "s", dag.COMPLETED, {})
    ready, skipped = dag.finished(state, "c", dag.COMPLETED, {"branch": "else"})
    assert ready == [] and skipped == ["a", "b", "j", "after"]
    assert dag.is_over(state)
    assert dag.run_output(state, []) == {}


def test_other_triggers_and_what_only_they_reach_are_skipped():
    g = graph({"s": "starter", "hook": "webhook", "a": "x", "h1": "x", "both": "x", "lonely": "x"},
              [("s", "a"), ("hook", "h1"), ("a", "both"), ("h1", "both")])
    state, ready, skipped = run(g)
    assert ready == ["s"] and set(skipped) == {"hook", "h1", "lonely"}
    dag.finished(state, "s", dag.COMPLETED, {})
    assert dag.finished(state, "a", dag.COMPLETED, 1) == (["both"], [])
    # a webhook run starts at the hook instead
    state, ready, skipped = run(g, entries=("hook",))
    assert ready == ["hook"] and set(skipped) == {"s", "a", "lonely"}


def test_failure_starts_nothing_and_cancel_rest_lists_running():
    g = graph({"s": "starter", "a": "x", "b": "x", "after": "x"}, [("s", "a"), ("s", "b"), ("a", "after")])
    state, _, _ = run(g)
    dag.finished(state, "s", dag.COMPLETED, {})
    assert dag.finished(state, "a", dag.FAILED) == ([], [])
    assert dag.cancel_rest(state) == ["b"]
    assert state.status["after"] == dag.PENDING and dag.is_over(state)


def test_continue_on_error_keeps_edges_live():
    g = graph({"s": "starter", "a": "x", "after": "x"}, [("s", "a"), ("a", "after")])
    state, _, _ = run(g)
    dag.finished(state, "s", dag.COMPLETED, {})
    ready, _ = dag.finished(state, "a", dag.FAILED, {"error": "boom"}, continue_on_error=True)
    assert ready == ["after"] and state.status["a"] == dag.FAILED
    dag.finished(state, "after", dag.COMPLETED, 2)
    assert dag.run_output(state, []) == {"after": 2}


def test_response_block_is_the_output():
    g = graph({"s": "starter", "r": "response", "x": "x"}, [("s", "r"), ("s", "x")])
    state, _, _ = run(g)
    dag.finished(state, "s", dag.COMPLETED, {})
    dag.finished(state, "r", dag.COMPLETED, {"answer": 42})
    dag.finished(state, "x", dag.COMPLETED, 1)
    assert dag.run_output(state, ["r"]) == {"answer": 42}


def test_ancestors():
    g = graph({"s": "starter", "a": "x", "b": "x", "c": "x"}, [("s", "a"), ("a", "b")])
    assert g.is_ancestor("s", "b") and g.is_ancestor("a", "b")
    assert not g.is_ancestor("b", "a") and not g.is_ancestor("c", "b") and not g.is_ancestor("b", "b")
    assert g.ancestors("b") == ["s", "a"]


def test_long_chain_is_cheap():
    n = 3000
    blocks = {f"b{i}": "x" for i in range(n)}
    blocks["b0"] = "starter"
    g = graph(blocks, [(f"b{i}", f"b{i + 1}") for i in range(n - 1)])
    state, ready, _ = run(g, entries=("b0",))
    for i in range(n - 1):
        assert dag.finished(state, f"b{i}", dag.COMPLETED, i) == ([f"b{i + 1}"], [])
    assert g.is_ancestor("b0", f"b{n - 1}")
