"""Log lines for people (the default) or for log shippers (ACTORFLOW_LOG_FORMAT=json).

JSON: one object per line with `time` (UTC, ISO 8601, ms, `Z`), `level`,
`logger`, `message`, and `execution_id` / `workflow_id` / `block_id` where
known: passed by the call (`log.error(..., extra={"execution_id": ...})`), or,
for access-log lines, read from the request path. A traceback goes in
`exc_info` as text, so an entry is always exactly one line.
"""

import datetime
import json
import logging
import re

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
CONTEXT = ("execution_id", "workflow_id", "block_id")
_PATH_IDS = re.compile(r"/api/workflows/(?P<workflow_id>[^/?\s]+)(?:/executions/(?P<execution_id>[^/?\s]+))?")


class JsonFormatter(logging.Formatter):
    def format(self, record):
        entry = {
            "time": datetime.datetime.fromtimestamp(record.created, datetime.timezone.utc)
            .strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key in CONTEXT:
            value = getattr(record, key, None)
            if value is not None:
                entry[key] = value
        if record.name == "tornado.access" and "workflow_id" not in entry:
            match = _PATH_IDS.search(entry["message"])
            if match:
                entry.update({k: v for k, v in match.groupdict().items() if v is not None})
        if record.exc_info:
            entry["exc_info"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exc_info"] = record.exc_text
        if record.stack_info:
            entry["stack_info"] = self.formatStack(record.stack_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


def configure(fmt="text", level=logging.INFO, stream=None):
    """Send the root logger's lines to stderr (or `stream`) in `fmt` (`text` or `json`)."""
    # Neither format shows the caller, thread or process, so no record looks them up
    # (logging's documented switches; a third of an access-log line's cost).
    logging._srcfile = None
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
