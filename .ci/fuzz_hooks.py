"""Schemathesis hooks for .ci/fuzz_api.py: steer generation, never hide a failure.

Random graphs are nearly always invalid (unknown references, configs a type
refuses), so the stateful chain create -> PUT graph -> execute -> executions
-> logs would rarely reach a real run. Half of the generated graph bodies are
replaced by the document's own example graph (a webhook, a starter and a
response block), so runs, executions, logs, streams and webhook calls happen.
"""

import schemathesis
from hypothesis import strategies as st

from server.openapi import GRAPH_EXAMPLE


@schemathesis.hook("before_generate_body").apply_to(operation_id="putGraph")
def half_valid_graphs(context, strategy):
    return st.one_of(st.just(GRAPH_EXAMPLE), strategy)
