"""LiveRun.wait_end: the run's result where the run ends, or ExecutionTimeout once the deadline passes."""

import asyncio

import pytest

from models.errors import ExecutionTimeout
from server.runs import LiveRun

RESULT = {"status": "completed", "output": 1, "error": None}


def test_a_waiter_gets_the_result_on_the_loops_next_turn_and_its_timer_is_dropped():
    async def scenario():
        run = LiveRun("e1", "wf", coordinator=None)
        waiter = run.wait_end(3600)
        timers = len(asyncio.get_running_loop()._scheduled)
        run.add([], RESULT)
        assert waiter.result() == RESULT                    # resolved where the run ended
        assert run._end_waits == []
        assert len(asyncio.get_running_loop()._scheduled) == timers  # cancelled: out at the next turn
        assert (await run.wait_end(3600)) == RESULT         # after the end: at once
        assert await waiter == RESULT
    asyncio.run(scenario())


def test_a_run_that_does_not_end_in_time_raises_for_that_waiter_only():
    async def scenario():
        run = LiveRun("e1", "wf", coordinator=None)
        late, patient = run.wait_end(0), run.wait_end(3600)
        with pytest.raises(ExecutionTimeout) as caught:
            await late
        assert caught.value.extra == {"execution_id": "e1"}
        assert not patient.done() and not run.finished.done()  # the run itself is untouched
        run.add([], RESULT)
        assert await patient == RESULT and run.finished.result() == RESULT
    asyncio.run(scenario())
