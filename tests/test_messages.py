"""What crosses between actors is not shared: a block changes only its own copies."""

import dataclasses
import threading

import pytest

from actors.context import BlockContext
from actors.messages import BlockDone, RunBlock


def test_a_block_changes_only_its_own_config_inputs_variables_and_trigger():
    config, inputs = {"data": {"list": [1, 2]}}, {"up": {"rows": [[1, "x"]]}}
    variables, trigger = {"v": {"deep": True}}, {"body": {"a": 1}}
    ctx = BlockContext(block_id="b", block_type="t", config=config, inputs=inputs,
                       variables=variables, trigger=trigger)
    ctx.config["data"]["list"].append(3)
    ctx.inputs["up"]["rows"][0][1] = "changed"
    ctx.variables["v"]["deep"] = False
    ctx.trigger["body"].clear()
    assert ctx.config["data"]["list"] == [1, 2, 3]      # the attempt sees its own changes
    assert config == {"data": {"list": [1, 2]}} and inputs == {"up": {"rows": [[1, "x"]]}}
    assert variables == {"v": {"deep": True}} and trigger == {"body": {"a": 1}}


def test_values_are_copied_only_when_read():
    variables = {"big": list(range(10))}
    ctx = BlockContext(block_id="b", block_type="t", config={}, inputs={}, variables=variables)
    assert "variables" not in ctx.__dict__
    assert ctx.variables == variables and ctx.variables is not variables
    assert ctx.variables is ctx.variables  # one copy per attempt


def test_messages_are_frozen_and_share_only_the_cancel_event():
    cancelled = threading.Event()
    message = RunBlock("b", "t", {}, {}, {}, None, None, 0, 1.0, cancelled)
    with pytest.raises(dataclasses.FrozenInstanceError):
        message.config = {"other": 1}
    with pytest.raises(dataclasses.FrozenInstanceError):
        BlockDone("b", True, 1, None, 1, None).output = 2
    ctx = BlockContext(block_id="b", block_type="t", config=message.config, inputs=message.inputs,
                       variables=message.variables, cancelled=message.cancelled)
    cancelled.set()
    assert ctx.cancelled.is_set()


@pytest.mark.parametrize("output", [None, 1, 2.5, "x\"y", [], {}, {"é": ["\u2028", {"n": -0.0}], "1": True}])
def test_an_outputs_text_is_made_once_and_is_what_encoding_the_output_makes(output):
    # The block makes the output's JSON once (storable_text); the log row stores it
    # and the block_completed event embeds it: both must be what encoding would write.
    from actors.coordinator import completed_text
    from actors.values import storable_text
    from models.base import compact_json
    copy, text = storable_text(output)
    assert text == compact_json(copy) and copy == output
    for block_id in ("a", "quote\"d", "ünï\u2028", "back\\slash", "\x01"):
        event = {"type": "block_completed", "block_id": block_id, "block_type": "code",
                 "output": copy, "duration_ms": 12}
        assert completed_text(event, text) == compact_json(event)


@pytest.mark.parametrize("output", [None, 1, "x\"y", {"é": ["\u2028", {"n": -0.0}], "1": True}])
def test_a_runs_output_text_makes_the_end_event_and_the_answer_encoding_would(output):
    # A run whose output is a response block's keeps that block's JSON text: the
    # execution_completed event and the /execute answer embed it as it is.
    from actors.coordinator import completed_run_text
    from actors.events import end_event
    from actors.values import storable_text
    from models.base import compact_json
    from server.execution_start import sync_answer
    copy, text = storable_text(output)
    for eid in ("0123abcd", "quote\"d", "ünï"):
        event = end_event(eid, "completed", copy, None, 7)
        assert completed_run_text(event, text) == compact_json(event)
        run = type("Run", (), {"execution_id": eid})()
        result = {"status": "completed", "output": copy, "duration_ms": 7, "output_text": text}
        status, body = sync_answer(run, result)
        assert status == 200
        assert body == compact_json(sync_answer(run, dict(result, output_text=None))[1]).encode()


VALUES = [None, True, 0, -7, 2.5, -0.0, 1e300, "", "x\"y\\z", "é\u2028\ud800\x00", [], {}, [[[]]],
          {"a": [1, {"b": None, "c": "ü"}], "1": False}, {1: "int key", 2.5: "float", None: 0, False: 1}]


def test_compact_json_writes_what_json_dumps_writes_from_many_threads_at_once():
    # compact_json keeps one C encoder for every thread: no state may leak between calls.
    import json
    from models.base import compact_json
    expected = [json.dumps(v, separators=(",", ":"), ensure_ascii=False, allow_nan=False) for v in VALUES]
    wrong = []

    def encode_all():
        for _ in range(300):
            got = [compact_json(v) for v in VALUES]
            if got != expected:
                wrong.append(got)

    workers = [threading.Thread(target=encode_all) for _ in range(4)]
    for t in workers:
        t.start()
    for t in workers:
        t.join(60)
    assert not wrong
    # The same value several times over is not a cycle.
    shared = {"k": [1, 2]}
    assert compact_json([shared, shared, {"again": shared}]) == '[{"k":[1,2]},{"k":[1,2]},{"again":{"k":[1,2]}}]'


@pytest.mark.parametrize("value, error, words", [
    (float("nan"), ValueError, "Out of range float"),
    ({"x": [float("-inf")]}, ValueError, "Out of range float"),
    ({"x": object()}, TypeError, "not JSON serializable"),
    ({(1, 2): 3}, TypeError, "keys must be"),
])
def test_compact_json_refuses_what_json_dumps_refuses(value, error, words):
    from models.base import compact_json
    with pytest.raises(error, match=words):
        compact_json(value)


def test_compact_json_names_a_cycle_and_works_on_afterwards():
    from models.base import compact_json
    cycle = {"a": []}
    cycle["a"].append(cycle)
    with pytest.raises(ValueError, match="Circular reference"):
        compact_json(cycle)
    assert compact_json({"a": [1]}) == '{"a":[1]}'
