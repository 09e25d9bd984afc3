"""Messages between actors. All frozen: once sent, nobody changes them.

The values they carry are JSON data that nobody changes after it is made
(block outputs and chunks are fresh copies, see values.storable); a block
reads its config, inputs and variables through copies of its own
(context.BlockContext). The one thing shared on purpose is RunBlock's
`cancelled` event: the coordinator sets it, the block's thread waits on it.
"""

import dataclasses
from typing import Any


@dataclasses.dataclass(frozen=True)
class RunBlock:
    """Coordinator -> block actor: run once (with retries) and tell me the result."""
    block_id: str
    block_type: str
    config: Any            # rendered
    inputs: Any            # ancestor outputs by id
    variables: Any
    trigger: Any
    timeout: float | None
    retries: int
    retry_delay: float
    cancelled: Any         # threading.Event: the one shared signal (set by the coordinator)


@dataclasses.dataclass(frozen=True)
class BlockDone:
    """Block actor -> coordinator: the block ended."""
    block_id: str
    ok: bool
    output: Any
    error: str | None
    attempts: int
    stdout: str | None
    output_text: str | None = None  # the output's compact JSON, when the block made it (see values)


@dataclasses.dataclass(frozen=True)
class BlockChunk:
    """Block actor -> coordinator: partial output while the block runs."""
    block_id: str
    chunk: Any


@dataclasses.dataclass(frozen=True)
class Cancel:
    """Anyone -> coordinator: end the run now. reason: timeout, cancelled or shutdown."""
    reason: str
    message: str


@dataclasses.dataclass(frozen=True)
class Idle:
    """An actor's own inbox -> the actor: nothing came within the wait it asked for."""
