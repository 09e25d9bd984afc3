"""Pure scheduling rules: readiness, live edges, skips, joins. No threads, no I/O.

The coordinator owns a RunState and calls these functions with what happened;
they update the state and say what to start and what to skip.
"""

import collections
import dataclasses
from types import MappingProxyType

PENDING, RUNNING, COMPLETED, FAILED, SKIPPED, CANCELLED = (
    "pending", "running", "completed", "failed", "skipped", "cancelled")


@dataclasses.dataclass(frozen=True)
class Edge:
    source: str
    target: str
    source_handle: str | None = None


@dataclasses.dataclass(frozen=True)
class Graph:
    """An immutable snapshot of a saved graph, with the indexes scheduling needs."""
    blocks: MappingProxyType      # id -> {"id", "type", "config", ...}
    order: tuple                  # ids in saved order
    incoming: MappingProxyType    # id -> tuple[Edge]
    outgoing: MappingProxyType    # id -> tuple[Edge]
    ancestor_bits: MappingProxyType  # id -> int bitset over `index`
    index: MappingProxyType       # id -> position in topological order

    @classmethod
    def build(cls, blocks, edges):
        order = tuple(b["id"] for b in blocks)
        incoming = {i: [] for i in order}
        outgoing = {i: [] for i in order}
        for e in edges:
            edge = Edge(e["source"], e["target"], e.get("source_handle"))
            outgoing[edge.source].append(edge)
            incoming[edge.target].append(edge)
        topo = _topological(order, incoming, outgoing)
        index = {block_id: n for n, block_id in enumerate(topo)}
        bits = {}
        for block_id in topo:  # parents come first, so their bits are ready
            value = 0
            for edge in incoming[block_id]:
                value |= bits[edge.source] | (1 << index[edge.source])
            bits[block_id] = value
        return cls(
            blocks=MappingProxyType({b["id"]: b for b in blocks}),
            order=order,
            incoming=MappingProxyType({k: tuple(v) for k, v in incoming.items()}),
            outgoing=MappingProxyType({k: tuple(v) for k, v in outgoing.items()}),
            ancestor_bits=MappingProxyType(bits),
            index=MappingProxyType(index),
        )

    def is_ancestor(self, candidate, block_id):
        """True when `candidate` has a path to `block_id`."""
        pos = self.index.get(candidate)
        return pos is not None and bool(self.ancestor_bits[block_id] >> pos & 1)

    def ancestors(self, block_id):
        bits = self.ancestor_bits[block_id]
        topo = sorted(self.index, key=self.index.get)
        return [b for b in topo if bits >> self.index[b] & 1]

    def sinks(self):
        return [b for b in self.order if not self.outgoing[b]]


def _topological(order, incoming, outgoing):
    remaining = {b: len(incoming[b]) for b in order}
    ready = [b for b in order if remaining[b] == 0]
    out = []
    while ready:
        block_id = ready.pop()
        out.append(block_id)
        for edge in outgoing[block_id]:
            remaining[edge.target] -= 1
            if remaining[edge.target] == 0:
                ready.append(edge.target)
    if len(out) != len(order):
        raise ValueError("graph has a cycle")
    return out


class RunState:
    """What the coordinator knows about each block of one run."""

    def __init__(self, graph: Graph):
        self.graph = graph
        self.status = dict.fromkeys(graph.order, PENDING)
        self.outputs = {}
        self.continued = set()  # failed with continue_on_error: edges stay live
        self.running = set()    # kept alongside `status` so no decision scans every block
        self.skipped = set()
        # Incoming edges whose source is not done yet: a join is decided when its count
        # reaches 0, not by rescanning every incoming edge at each parent's end.
        self.waiting = {b: len(graph.incoming[b]) for b in graph.order}

    def set(self, block_id, status):
        """Change a block's status (the only way to, so the sets stay true)."""
        old = self.status[block_id]
        if old == RUNNING:
            self.running.discard(block_id)
        self.status[block_id] = status
        if status == RUNNING:
            self.running.add(block_id)
        elif status == SKIPPED:
            self.skipped.add(block_id)

    def is_done(self, block_id):
        s = self.status[block_id]
        return s in (COMPLETED, SKIPPED) or (s == FAILED and block_id in self.continued)


def edge_is_live(state: RunState, edge: Edge) -> bool:
    """Live: the source completed (or failed but continues) and, for a condition, chose this branch."""
    source = edge.source
    status = state.status[source]
    if status == COMPLETED:
        if state.graph.blocks[source]["type"] == "condition":
            output = state.outputs.get(source)
            return isinstance(output, dict) and output.get("branch") == edge.source_handle
        return True
    return status == FAILED and source in state.continued


def start(state: RunState, entries):
    """Begin a run at `entries`. Roots that are not entries are skipped.

    Returns (ready, skipped): ids to start now, ids skipped (in decision order).
    """
    entries = set(entries)
    ready, skipped = [], []
    for block_id in state.graph.order:
        if state.graph.incoming[block_id]:
            continue
        if block_id in entries:
            ready.append(block_id)
        else:
            skipped.append(block_id)
    for block_id in ready:
        state.set(block_id, RUNNING)
    more_ready, more_skipped = _settle(state, skipped, mark=True)
    return ready + more_ready, skipped + more_skipped


def finished(state: RunState, block_id, status, output=None, continue_on_error=False):
    """Record a block's end and decide what follows.

    Returns (ready, skipped). A failure without continue_on_error starts nothing.
    """
    state.set(block_id, status)
    if status == COMPLETED:
        state.outputs[block_id] = output
    elif status == FAILED and continue_on_error:
        state.continued.add(block_id)
        state.outputs[block_id] = output
    else:
        return [], []
    return _settle(state, [block_id])


def _settle(state, changed, mark=False):
    """Look at the successors of `changed`; start or skip those now decided.

    Every block in `changed` is done and passed here once per run.
    """
    graph = state.graph
    waiting = state.waiting
    ready, skipped = [], []
    if mark:
        for block_id in changed:
            state.set(block_id, SKIPPED)
    queue = collections.deque(changed)
    while queue:
        block_id = queue.popleft()
        for edge in graph.outgoing[block_id]:
            target = edge.target
            waiting[target] -= 1
            if waiting[target] > 0 or state.status[target] != PENDING:
                continue
            if any(edge_is_live(state, e) for e in graph.incoming[target]):
                state.set(target, RUNNING)
                ready.append(target)
            else:
                state.set(target, SKIPPED)
                skipped.append(target)
                queue.append(target)
    return ready, skipped


@dataclasses.dataclass(frozen=True)
class Restored:
    """A run's state rebuilt from its stored block logs, and what to do next."""
    state: RunState
    restart: tuple      # blocks that were running when the run stopped: start them again
    ready: tuple        # blocks the stored decisions had not reached yet, now ready
    skipped: tuple      # ... and those now skipped
    failed: str | None  # a block that failed the run (its end was not stored)


def restore(graph: Graph, logs) -> Restored:
    """Rebuild a run from its block logs (mappings with block_id, status, output), in start order.

    Finished blocks keep their outputs, skipped ones stay skipped; blocks that
    were running (or cancelled without the run ending) start again. A failure
    with an output is one that continued (`continue_on_error`).
    """
    state = RunState(graph)
    restart, failed = [], None
    for row in logs:
        block_id, status = row["block_id"], row["status"]
        if block_id not in graph.blocks or state.status[block_id] != PENDING:
            continue
        if status == COMPLETED:
            state.set(block_id, COMPLETED)
            state.outputs[block_id] = row["output"]
        elif status == SKIPPED:
            state.set(block_id, SKIPPED)
        elif status == FAILED:
            state.set(block_id, FAILED)
            if row["output"] is not None:
                state.continued.add(block_id)
                state.outputs[block_id] = row["output"]
            elif failed is None:
                failed = block_id
        else:
            state.set(block_id, RUNNING)
            restart.append(block_id)
    ready, skipped = [], []
    if failed is None:
        ready, skipped = _settle(state, [b for b in graph.order if state.is_done(b)])
    return Restored(state, tuple(restart), tuple(ready), tuple(skipped), failed)


def cancel_rest(state: RunState):
    """The run ended early: running blocks become cancelled. Returns their ids."""
    position = {block_id: n for n, block_id in enumerate(state.graph.order)}
    running = sorted(state.running, key=position.__getitem__)  # not order.index: O(n) each
    for block_id in running:
        state.set(block_id, CANCELLED)
    return running


def is_over(state: RunState) -> bool:
    return not state.running


def output_block(state: RunState, response_order):
    """The first completed response block, whose data is the run's output; None if none completed."""
    for block_id in response_order:
        if state.status.get(block_id) == COMPLETED:
            return block_id
    return None


def run_output(state: RunState, response_order):
    """The run's output: the first completed response block's data, else the sinks' outputs."""
    block_id = output_block(state, response_order)
    if block_id is not None:
        return state.outputs[block_id]
    return {b: state.outputs[b] for b in state.graph.sinks()
            if state.status[b] == COMPLETED or b in state.continued}
