"""The block type registry: one entry per type, with its config check and its run."""

import dataclasses
from typing import Any, Awaitable, Callable, Optional


@dataclasses.dataclass(frozen=True)
class BlockType:
    """A kind of block.

    `check(config)` returns a list of (key, message) problems with a saved
    config; `run(ctx)` returns the block's output or raises BlockError.
    `trigger` types start runs (starter, webhook, schedule). Keys in `raw_keys` are not
    rendered before the run (the agent renders its tools per call). Keys in
    `secret_keys` never reach the block's log. Types with `uses_inputs` false
    are not handed their ancestors' outputs (collecting them costs time on
    long graphs). Types with `waits_on_runs` (workflow, map, and the agent,
    whose tools may be workflows) start outside the launch budget: a slot held while waiting on
    a sub-run whose blocks wait for a slot would never come back.
    Types with `inline` return at once, with no I/O and no waiting (starter,
    webhook, schedule, response, condition): their block actor's loop runs on
    the coordinator's thread at the end of its turn rather than on a thread
    woken for it, unless the block has retries (a backoff would hold the
    coordinator). It is still its own pykka actor, started when the block is
    ready, told its RunBlock, telling its BlockDone. Waking a thread and
    being woken back cost more than such a block's run.
    A type with `wait` (http) waits without a thread: `wait(ctx)` is a
    coroutine run on the HTTP loop (actors/http_loop), and what it returns
    is called on a block thread to make the output (or raise as `run`
    does). `run` does the same on the caller's thread.
    """
    name: str
    check: Callable[[dict], list]
    run: Callable[[Any], Any]
    trigger: bool = False
    raw_keys: frozenset = frozenset()
    secret_keys: frozenset = frozenset()
    uses_inputs: bool = True
    waits_on_runs: bool = False
    inline: bool = False
    wait: Optional[Callable[[Any], Awaitable[Callable[[], Any]]]] = None


class Registry:
    def __init__(self, types=()):
        self._types = {t.name: t for t in types}

    def __contains__(self, name):
        return isinstance(name, str) and name in self._types

    def __getitem__(self, name) -> BlockType:
        return self._types[name]

    def names(self):
        return sorted(self._types)

    def extended(self, *types) -> "Registry":
        """A new registry with `types` added (tests add their own this way)."""
        return Registry(list(self._types.values()) + list(types))


def default_registry() -> Registry:
    """The types the server ships."""
    from . import agent, code, condition, http, llm, map, response, schedule, starter, webhook, workflow
    return Registry([starter.TYPE, webhook.TYPE, schedule.TYPE, response.TYPE, condition.TYPE,
                     code.TYPE, http.TYPE, llm.TYPE, agent.TYPE, workflow.TYPE, map.TYPE])
