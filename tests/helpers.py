"""Small things many test modules use: graph pieces, settings changes, process checks."""

import pytest

START = {"id": "start", "type": "starter"}


def edge(source, target, handle=None):
    e = {"source": source, "target": target}
    if handle is not None:
        e["source_handle"] = handle
    return e


def configure(**changes):
    """`@configure(name=value)` on a test changes its server's settings."""
    return pytest.mark.parametrize("settings", [changes], indirect=True)


def alive(pid):
    """Running (not gone, not a zombie)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except OSError:
        return False
