"""Actorflow: `python run.py` serves; other subcommands manage API keys.

    python run.py [serve] [--host H] [--port P] [--database-url URL] ...
    python run.py create-key [--workspace NAME] [--name LABEL]
    python run.py list-keys
    python run.py revoke-key KEY_ID
    python run.py openapi > openapi.json
"""

import argparse
import asyncio
import logging
import signal
import sys

from server import settings as settings_mod

log = logging.getLogger("actorflow")


def build_parser():
    common = argparse.ArgumentParser(add_help=False)
    settings_mod.add_flags(common)
    parser = argparse.ArgumentParser(
        prog="run.py", parents=[common],
        description="Actorflow: a self-hosted workflow engine. Settings come from "
                    "ACTORFLOW_* environment variables, then from these flags.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.add_parser("serve", parents=[common], help="run the server (the default)")
    create = sub.add_parser("create-key", parents=[common], help="make an API key; prints it last")
    create.add_argument("--workspace", default="default", help="workspace name (default: default)")
    create.add_argument("--name", default="", help="a label for the key")
    sub.add_parser("list-keys", parents=[common], help="list keys (never the keys themselves)")
    revoke = sub.add_parser("revoke-key", parents=[common], help="revoke a key by its id")
    revoke.add_argument("key_id")
    sub.add_parser("openapi", parents=[common], help="print the OpenAPI document (JSON); needs no server")
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    settings = settings_mod.load(flags=args)
    command = args.command or "serve"
    if command == "serve":
        return serve(settings)
    if command == "openapi":
        from server.openapi import write
        write(sys.stdout)
        return 0
    from models.db import migrate, open_database
    from models import workspace as ws
    db = open_database(settings.database_url)
    migrate()
    try:
        if command == "create-key":
            row, key = ws.create_key(args.workspace, args.name)
            print(f"created key {row.id} in workspace {args.workspace!r}; it is shown only once:")
            print(key)
        elif command == "list-keys":
            print("id\tworkspace\tlabel\tcreated_at\trevoked")
            for row in ws.list_keys():
                from models.base import iso
                print(f"{row.id}\t{row.workspace.name}\t{row.label}\t{iso(row.created_at)}\t"
                      f"{'yes' if row.revoked_at else 'no'}")
        elif command == "revoke-key":
            if not ws.revoke_key(args.key_id):
                print(f"no live key with id {args.key_id}", file=sys.stderr)
                return 1
            print(f"revoked {args.key_id}")
    finally:
        db.close()
    return 0


def serve(settings):
    from server import logformat
    logformat.configure(settings.log_format)
    return asyncio.run(_serve(settings))


async def _serve(settings):
    from tornado.httpserver import HTTPServer
    from tornado.ioloop import IOLoop
    from tornado.netutil import bind_sockets
    from models import workspace as ws
    from server.app import make_app
    from server.runtime import Runtime

    runtime = Runtime(settings, IOLoop.current())
    if settings.api_key:
        ws.create_key("default", "ACTORFLOW_API_KEY", key=settings.api_key)
    elif not ws.any_key():
        _, key = ws.create_key("default", "first key")
        print(f"No API key existed, so one was made. It is shown only this once:\n{key}", flush=True)
    server = HTTPServer(make_app(runtime), max_body_size=settings.max_graph_body + 65536,
                        idle_connection_timeout=120, body_timeout=60)
    sockets = bind_sockets(settings.port, settings.host)
    server.add_sockets(sockets)
    runtime.listening_on(sockets)
    port = sockets[0].getsockname()[1]
    print(f"Actorflow listening on http://{settings.host}:{port}", flush=True)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("stopping: no new requests; letting runs finish (grace %ss)", settings.shutdown_grace)
    server.stop()
    await runtime.shutdown()
    await server.close_all_connections()
    log.info("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
