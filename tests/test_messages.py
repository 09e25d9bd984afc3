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
