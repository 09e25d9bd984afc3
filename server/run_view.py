"""Show a streamed run in a terminal: a line per block, LLM tokens as they come, the output.

On a terminal a progress bar counts blocks done out of the total and colours
mark the outcome; piped, the same lines come plain and tokens are written as
they arrive. NO_COLOR is honoured (rich reads it).
"""

import json
import sys

from rich.console import Console, Group
from rich.live import Live
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.text import Text

COMPLETED, FAILED, USAGE, TIMEOUT = 0, 1, 2, 124
DONE = {"block_completed", "block_failed", "block_skipped"}


def exit_status(event):
    """The command's exit status for a stream's last event."""
    if event.get("type") == "execution_completed":
        return COMPLETED
    if event.get("error_code") == "EXECUTION_TIMEOUT":
        return TIMEOUT
    if event.get("type") == "error" and not event.get("execution_id"):
        return USAGE    # no run was made: unknown workflow or bad variables
    return FAILED


def raw(events, out=sys.stdout):
    """--json: each event as one JSON line, as it arrives."""
    last = {}
    for event in events:
        out.write(json.dumps(event, ensure_ascii=False) + "\n")
        out.flush()
        last = event
    return exit_status(last)


class RunView:
    """Renders the events of one run on `console`; `total` is the number of blocks."""

    def __init__(self, console: Console, total: int):
        self.console = console
        self.total = total
        self.done = 0
        self.tokens = {}          # block id -> text streamed so far (terminal only)
        self.open_line = None     # block id whose tokens are mid-line (piped only)
        self.tty = console.is_terminal
        self.progress = Progress(TextColumn("[bold]blocks"), BarColumn(), MofNCompleteColumn(),
                                 TimeElapsedColumn(), console=console, transient=True)
        self.task = self.progress.add_task("run", total=max(total, 1))

    def show(self, events):
        last = {}
        if not self.tty:
            for event in events:
                self.handle(event)
                last = event
            return self.finish(last)
        with Live(self._live(), console=self.console, refresh_per_second=10, transient=True) as live:
            for event in events:
                self.handle(event)
                live.update(self._live())
                last = event
        return self.finish(last)

    def _live(self):
        parts = [self.progress]
        for block_id, text in self.tokens.items():
            tail = text.replace("\n", " ")[-(max(self.console.width - len(block_id) - 6, 20)):]
            parts.append(Text.assemble(("  " + block_id + ": ", "cyan"), tail))
        return Group(*parts)

    def _line(self, text):
        if self.open_line is not None:
            self.console.file.write("\n")
            self.open_line = None
        self.console.print(text, highlight=False)

    def handle(self, event):
        kind = event.get("type")
        block = event.get("block_id", "")
        if kind == "execution_started":
            self._line(Text(f"run {event.get('execution_id')} started", style="bold"))
        elif kind == "block_started":
            self._line(Text.assemble("  ▸ ", (block, "cyan"), f" ({event.get('block_type', '?')}) started"))
        elif kind == "block_chunk":
            self._chunk(block, event.get("chunk", ""))
        elif kind == "block_completed":
            self.tokens.pop(block, None)
            self._line(Text.assemble("  ", ("✓", "green"), " ", (block, "cyan"),
                                     f" finished in {_ms(event.get('duration_ms'))}"))
        elif kind == "block_failed":
            self.tokens.pop(block, None)
            self._line(Text.assemble("  ", ("✗", "red"), " ", (block, "cyan"), " failed: ",
                                     (str(event.get("error", "")), "red")))
        elif kind == "block_skipped":
            self._line(Text.assemble("  - ", (block, "cyan"), " skipped", style="dim"))
        if kind in DONE:
            self.done += 1
            self.progress.update(self.task, completed=min(self.done, self.total))

    def _chunk(self, block, chunk):
        chunk = chunk if isinstance(chunk, str) else json.dumps(chunk, ensure_ascii=False)
        if self.tty:
            self.tokens[block] = self.tokens.get(block, "") + chunk
            return
        if self.open_line != block:
            if self.open_line is not None:
                self.console.file.write("\n")
            self.console.file.write(f"  {block}> ")
            self.open_line = block
        self.console.file.write(chunk)
        self.console.file.flush()

    def finish(self, last):
        kind = last.get("type")
        status = exit_status(last) if last else FAILED
        if kind == "execution_completed":
            self._line(Text.assemble(("completed", "bold green"),
                                     f" in {_ms(last.get('duration_ms'))}; output:"))
            output = json.dumps(last.get("output"), ensure_ascii=False, indent=2)
            if self.tty:
                from rich.json import JSON
                self.console.print(JSON(output))
            else:
                self.console.file.write(output + "\n")
        elif not last:
            self._line(Text("the stream ended without a result", style="bold red"))
        else:
            word = {TIMEOUT: "timed out", USAGE: "not started"}.get(status, "failed")
            self._line(Text.assemble((word, "bold red"), f": {last.get('error', '')}"))
        self.console.file.flush()
        return status


def _ms(value):
    if value is None:
        return "?"
    return f"{value} ms" if value < 10000 else f"{value / 1000:.1f} s"
