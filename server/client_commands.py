"""Client-side commands: drive a running server over its HTTP API.

The server is ACTORFLOW_URL (or --url); the key is ACTORFLOW_KEY, or read
from --key-file / ACTORFLOW_KEY_FILE. Tables on a terminal, plain tab-separated
lines when piped, `--json` for the server's own answers.
"""

import argparse
import datetime
import json
import os
import sys

from .client import DEFAULT_URL, Api, ClientError, find_key

# Webhook credentials belong to the server that issued them; an export leaves them out.
WEBHOOK_CREDENTIALS = ("webhook_id", "webhook_secret")
WORKFLOW_ID = "the workflow's id (see `workflows list`)"


def add_client_flags(parser):
    group = parser.add_argument_group("server to talk to (client commands)")
    group.add_argument("--url", default=argparse.SUPPRESS,
                       help=f"the server's address (or ACTORFLOW_URL, or url in the config file; "
                            f"default: {DEFAULT_URL})")
    group.add_argument("--key-file", default=argparse.SUPPRESS, metavar="FILE",
                       help="read the API key from FILE (or ACTORFLOW_KEY, ACTORFLOW_KEY_FILE, or key_file "
                            "in the config file; default: none)")


def add_commands(sub, formatter):
    """Register `workflows ...`, `graph put`, `run`, `executions`, `logs`, `deploy`, `undeploy`, `arm`."""

    def add_flags(parser):
        add_client_flags(parser)
        parser.add_argument("--config", metavar="FILE", default=argparse.SUPPRESS,
                            help="TOML file with url and key_file (or ACTORFLOW_CONFIG; default: none)")

    def command(parent, name, help, func, json_flag=True, json_help="print the server's JSON answer"):
        parser = parent.add_parser(name, help=help, description=help, formatter_class=formatter)
        add_flags(parser)
        if json_flag:
            parser.add_argument("--json", action="store_true", help=json_help)
        parser.set_defaults(func=_client(func))
        return parser

    def group(name, help):
        parser = sub.add_parser(name, help=help, description=help, formatter_class=formatter)
        add_flags(parser)   # `workflows --url X list` as well as `workflows list --url X`
        nested = parser.add_subparsers(dest="action", metavar="ACTION", parser_class=type(parser))
        parser.set_defaults(func=lambda args: parser.error("say which action (see --help)"))
        return nested

    wf = group("workflows", "list, show, create, delete, export and import workflows")
    p = command(wf, "list", "list workflows, newest first", workflows_list)
    p.add_argument("--limit", type=int, default=50, help="at most this many (default: 50, max 500)")
    p = command(wf, "show", "one workflow with its blocks and edges", workflows_show)
    p.add_argument("id", help=WORKFLOW_ID)
    p = command(wf, "create", "make a workflow; prints its id last", workflows_create)
    p.add_argument("name", help="the new workflow's name")
    p.add_argument("--description", default="", help="what it is for (default: none)")
    p = command(wf, "delete", "delete a workflow with its runs and logs", workflows_delete, json_flag=False)
    p.add_argument("id", help=WORKFLOW_ID)
    p = command(wf, "export", "print a workflow as JSON (name, description, blocks, edges)",
                workflows_export, json_flag=False)
    p.add_argument("id", help=WORKFLOW_ID)
    p.add_argument("-o", "--output", metavar="FILE",
                   help="write to FILE instead of standard output (default: standard output)")
    p = command(wf, "import", "make a workflow from an export; webhook credentials are re-issued",
                workflows_import)
    p.add_argument("file", help="an export (- for standard input)")
    p.add_argument("--name", help="name it this instead (default: the exported name)")

    graph = group("graph", "save a workflow's graph")
    p = command(graph, "put", "replace a workflow's graph with a JSON file ({blocks, edges})", graph_put)
    p.add_argument("id", help=WORKFLOW_ID)
    p.add_argument("file", help="graph JSON (- for standard input)")

    p = command(sub, "run", "run a workflow, streaming it live; exit 0 completed, 1 failed, "
                            "2 usage, 124 timeout", run,
                json_help="print the raw events, one JSON object a line")
    p.add_argument("id", help=WORKFLOW_ID)
    p.add_argument("--var", action="append", default=[], metavar="NAME=VALUE",
                   help="a variable; VALUE is read as JSON when it parses, else as text "
                        "(repeatable; default: none)")
    p.add_argument("--vars-file", metavar="FILE", help="variables from a JSON object file (--var wins; default: none)")
    p.add_argument("--timeout", type=float, help="seconds this run may take (default: the server's)")

    p = command(sub, "executions", "list a workflow's runs, newest first", executions)
    p.add_argument("id", help=WORKFLOW_ID)
    p.add_argument("--limit", type=int, default=20, help="at most this many (default: 20)")
    p.add_argument("--status", help="only runs with this status: running, completed, failed, timeout, "
                                    "cancelled (default: all)")
    p = command(sub, "logs", "a run's per-block logs (a table; --json for the raw answer)", logs)
    p.add_argument("id", help=WORKFLOW_ID)
    p.add_argument("execution_id", help="the run's id (see `executions`)")
    for name, help, func in (("deploy", "deploy a workflow (webhooks can then be armed)", deploy),
                             ("undeploy", "undeploy a workflow and disarm it", undeploy),
                             ("arm", "arm a deployed workflow's webhooks; prints their URLs and time left",
                              arm)):
        command(sub, name, help, func).add_argument("id", help=WORKFLOW_ID)


def _client(func):
    """Wrap a command: build the Api from flags/environment, map ClientError to its exit status."""

    def call(args):
        from .cli import UsageError
        from .settings import client_config
        config = client_config(flags=args)   # flags, then ACTORFLOW_*, then the config file
        url = getattr(args, "url", None) or os.environ.get("ACTORFLOW_URL") or config.get("url") or DEFAULT_URL
        try:
            api = Api(url, find_key(getattr(args, "key_file", None), config_key_file=config.get("key_file")))
        except ClientError as exc:
            raise UsageError(str(exc)) from None
        try:
            return func(api, args)
        except ClientError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return exc.status
        finally:
            api.close()
    return call


def _console():
    from rich.console import Console
    return Console(highlight=False)


def _table(columns, rows):
    """A rich table on a terminal; tab-separated lines (with a header) when piped."""
    console = _console()
    if not console.is_terminal:
        print("\t".join(columns))
        for row in rows:
            print("\t".join("" if v is None else str(v) for v in row))
        return
    from rich.table import Table
    table = Table(*columns, box=None, header_style="bold")
    for row in rows:
        table.add_row(*("" if v is None else str(v) for v in row))
    console.print(table)


def _print_json(value):
    print(json.dumps(value, ensure_ascii=False, indent=2))


def _read_json(path, what):
    from .cli import UsageError
    try:
        if path == "-":
            return json.load(sys.stdin)
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except OSError as exc:
        raise UsageError(f"cannot read {what} {path}: {exc.strerror}") from None
    except ValueError as exc:
        raise UsageError(f"{what} {path} is not JSON: {exc}") from None


def workflows_list(api, args):
    data = api.get(f"/api/workflows?limit={args.limit}")
    if args.json:
        return _print_json(data)
    _table(["id", "name", "deployed", "updated"],
           [(w["id"], w["name"], "yes" if w.get("deployed") else "no", w.get("updated_at"))
            for w in data["workflows"]])
    if data["total"] > len(data["workflows"]):
        print(f"({len(data['workflows'])} of {data['total']}; --limit for more)", file=sys.stderr)


def workflows_show(api, args):
    wf = api.get(f"/api/workflows/{args.id}")
    if args.json:
        return _print_json(wf)
    print(f"{wf['name']} ({wf['id']})")
    if wf.get("description"):
        print(wf["description"])
    print(f"deployed: {'yes' if wf.get('deployed') else 'no'}; armed until: {wf.get('armed_until') or '-'}")
    _table(["block", "type", "after"],
           [(b["id"], b["type"], ", ".join(e["source"] for e in wf["edges"] if e["target"] == b["id"]))
            for b in wf["blocks"]])


def workflows_create(api, args):
    wf = api.post("/api/workflows", {"name": args.name, "description": args.description})
    if args.json:
        return _print_json(wf)
    print(f"created workflow {wf['name']!r}:")
    print(wf["id"])


def workflows_delete(api, args):
    api.call("DELETE", f"/api/workflows/{args.id}")
    print(f"deleted {args.id}")


def export_of(wf):
    """The portable part of a workflow: no ids, times or webhook credentials."""
    blocks = []
    for block in wf["blocks"]:
        config = dict(block.get("config") or {})
        if block["type"] == "webhook":
            for key in WEBHOOK_CREDENTIALS:
                config.pop(key, None)
        blocks.append({"id": block["id"], "type": block["type"], "config": config,
                       "position": block.get("position", {"x": 0, "y": 0})})
    return {"actorflow_export": 1, "name": wf["name"], "description": wf.get("description", ""),
            "blocks": blocks, "edges": wf["edges"]}


def workflows_export(api, args):
    text = json.dumps(export_of(api.get(f"/api/workflows/{args.id}")), ensure_ascii=False, indent=2)
    if args.output:
        with open(args.output, "w", encoding="utf-8") as f:
            f.write(text + "\n")
        print(f"exported {args.id} to {args.output}", file=sys.stderr)
    else:
        print(text)


def workflows_import(api, args):
    from .cli import UsageError
    data = _read_json(args.file, "export")
    if not isinstance(data, dict) or not isinstance(data.get("blocks"), list) or "name" not in data:
        raise UsageError(f"{args.file} is not an Actorflow export (needs name, blocks, edges)")
    graph = export_of({"name": data["name"], "description": data.get("description", ""),
                       "blocks": data["blocks"], "edges": data.get("edges", [])})
    wf = api.post("/api/workflows", {"name": args.name or graph["name"],
                                     "description": graph["description"]})
    try:
        saved = api.call("PUT", f"/api/workflows/{wf['id']}/graph",
                         {"blocks": graph["blocks"], "edges": graph["edges"]})
    except ClientError:
        api.call("DELETE", f"/api/workflows/{wf['id']}")   # no half-imported workflow stays
        raise
    if args.json:
        return _print_json(saved)
    for block in saved["blocks"]:
        if block["type"] == "webhook":
            print(f"webhook block {block['id']}: new credentials issued; "
                  f"URL {api.url}/api/webhooks/{block['config']['webhook_id']}", file=sys.stderr)
    print(f"imported {graph['name']!r} with {len(saved['blocks'])} blocks:")
    print(wf["id"])


def graph_put(api, args):
    graph = _read_json(args.file, "graph")
    saved = api.call("PUT", f"/api/workflows/{args.id}/graph", graph)
    if args.json:
        return _print_json(saved)
    print(f"saved {len(saved['blocks'])} blocks and {len(saved['edges'])} edges")


def parse_vars(args):
    """Variables from --vars-file, then each --var NAME=VALUE (JSON when it parses)."""
    from .cli import UsageError
    variables = {}
    if args.vars_file:
        variables = _read_json(args.vars_file, "variables file")
        if not isinstance(variables, dict):
            raise UsageError(f"{args.vars_file} must hold a JSON object")
    for item in args.var:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise UsageError(f"--var {item!r}: write NAME=VALUE")
        try:
            variables[name] = json.loads(value)
        except ValueError:
            variables[name] = value
    return variables


def run(api, args):
    from .run_view import RunView, raw
    body = {"variables": parse_vars(args)}
    if args.timeout is not None:
        body["timeout"] = args.timeout
    events = api.stream(f"/api/workflows/{args.id}/execute/stream", body)
    if args.json:
        return raw(events)
    try:
        total = len(api.get(f"/api/workflows/{args.id}")["blocks"])
    except ClientError:
        total = 0    # the stream's own error event says what is wrong
    return RunView(_console(), total).show(events)


def executions(api, args):
    query = f"?limit={args.limit}" + (f"&status={args.status}" if args.status else "")
    data = api.get(f"/api/workflows/{args.id}/executions{query}")
    if args.json:
        return _print_json(data)
    _table(["id", "status", "trigger", "started", "ms", "error"],
           [(e["id"], e["status"], e.get("trigger"), e.get("started_at"), e.get("duration_ms"),
             (e.get("error") or "")[:60]) for e in data["executions"]])


def logs(api, args):
    data = api.get(f"/api/workflows/{args.id}/executions/{args.execution_id}/logs")
    if args.json:
        return _print_json(data)
    _table(["block", "type", "status", "ms", "attempts", "error / output"],
           [(entry["block_id"], entry["block_type"], entry["status"], entry.get("duration_ms"),
             entry.get("attempts"),
             (entry.get("error") or json.dumps(entry.get("output"), ensure_ascii=False))[:70])
            for entry in data["logs"]])


def deploy(api, args):
    data = api.post(f"/api/workflows/{args.id}/deploy")
    if args.json:
        return _print_json(data)
    print(f"deployed {args.id} at {data.get('deployed_at')}")


def undeploy(api, args):
    data = api.post(f"/api/workflows/{args.id}/undeploy")
    if args.json:
        return _print_json(data)
    print(f"undeployed {args.id}")


def arm(api, args):
    data = api.post(f"/api/workflows/{args.id}/arm")
    if args.json:
        return _print_json(data)
    until = data["armed_until"]
    left = (datetime.datetime.fromisoformat(until.replace("Z", "+00:00"))
            - datetime.datetime.now(datetime.timezone.utc)).total_seconds()
    print(f"armed until {until} ({max(0, round(left))} s left); one call is accepted")
    for block in api.get(f"/api/workflows/{args.id}")["blocks"]:
        if block["type"] == "webhook":
            config = block["config"]
            print(f"{block['id']}: POST {api.url}/api/webhooks/{config['webhook_id']}")
            print(f"  X-Webhook-Secret: {config['webhook_secret']}")
