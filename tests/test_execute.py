import asyncio
import time

import pytest

START = {"id": "start", "type": "starter"}


def edge(s, t, h=None):
    e = {"source": s, "target": t}
    if h is not None:
        e["source_handle"] = h
    return e


@pytest.mark.gen_test
async def test_execute_starter_to_response(api):
    wf = await api.workflow([START, {"id": "out", "type": "response",
                                     "config": {"data": {"hi": "{{ variables.name }}", "n": "{{ start.n }}"}}}],
                            [edge("start", "out")])
    status, body = await api.execute(wf, {"name": "Ada", "n": 3})
    assert status == 200, body
    assert body["status"] == "completed"
    assert body["output"] == {"hi": "Ada", "n": 3}
    assert isinstance(body["duration_ms"], int)
    status, logs = await api.get(f"/api/workflows/{wf}/executions/{body['execution_id']}/logs")
    assert status == 200
    assert [(l["block_id"], l["status"]) for l in logs["logs"]] == [("start", "completed"), ("out", "completed")]
