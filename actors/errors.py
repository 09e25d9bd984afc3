"""Errors of the engine itself."""

from models.errors import ActorflowError


class BlockError(ActorflowError):
    """A block failed; the message goes to its log and to the run's error."""
