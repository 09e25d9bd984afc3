"""Server-side commands: serve, and the ones that work on the database directly.

They use the same settings (so the same database) as `serve`, and work while
a server is running.
"""

import contextlib
import sys

from . import settings as settings_mod


def add_commands(command):
    """Register the server-side subcommands through `command(name, help, func, ...)`."""
    command("serve", "run the server (the default command)", serve_command)
    create = command("create-key", "make an API key; prints it alone on the last line", create_key)
    create.add_argument("--workspace", default="default", help="workspace name (default: default)")
    create.add_argument("--name", default="", help="a label for the key (default: none)")
    command("list-keys", "list keys: id, workspace, label, created, revoked (never the keys)", list_keys)
    revoke = command("revoke-key", "revoke a key by its id (see list-keys)", revoke_key)
    revoke.add_argument("key_id", help="the key's id")
    command("migrate", "bring the database schema up to date, then exit", migrate)
    backup = command("backup", "write a consistent copy of the SQLite database, also while it serves",
                     backup_command)
    backup.add_argument("path", help="file to write (must not exist)")
    command("openapi", "print the OpenAPI document (JSON); needs no server", openapi, settings=False)


def openapi(args):
    from .openapi import write
    write(sys.stdout)


def serve_command(args):
    from .serve import serve
    return serve(settings_mod.load(flags=args))


@contextlib.contextmanager
def _database(args):
    from models.db import migrate as apply, open_database
    from .serve import StartupError, check_data_dir, redact_url
    import peewee
    settings = settings_mod.load(flags=args)
    check_data_dir(settings.database_url)
    try:
        db = open_database(settings.database_url)
        apply()
    except (peewee.OperationalError, peewee.DatabaseError, OSError) as exc:
        raise StartupError(f"cannot open database {redact_url(settings.database_url)}: "
                           f"{str(exc).strip() or type(exc).__name__}; "
                           "check --database-url / ACTORFLOW_DATABASE_URL") from None
    try:
        yield settings
    finally:
        db.close()


def create_key(args):
    from marshmallow import ValidationError
    from models import workspace as ws
    from schemas.fields import Text
    from .cli import UsageError
    for flag, value in (("--workspace", args.workspace), ("--name", args.name)):
        try:
            Text().deserialize(value)   # what a column of any store holds, as for API names
        except ValidationError as exc:
            raise UsageError(f"{flag} {exc.messages[0]}") from None
    if not args.workspace:
        raise UsageError("--workspace must not be empty")
    with _database(args):
        row, key = ws.create_key(args.workspace, args.name)
    print(f"created key {row.id} in workspace {args.workspace!r}; it is shown only once:")
    print(key)


def list_keys(args):
    from models import workspace as ws
    from models.base import iso
    with _database(args):
        rows = ws.list_keys()
        print("id\tworkspace\tlabel\tcreated_at\trevoked")
        for row in rows:
            print(f"{row.id}\t{row.workspace.name}\t{row.label}\t{iso(row.created_at)}\t"
                  f"{'yes' if row.revoked_at else 'no'}")


def revoke_key(args):
    from models import workspace as ws
    with _database(args):
        done = ws.revoke_key(args.key_id)
    if not done:
        print(f"no live key with id {args.key_id}", file=sys.stderr)
        return 1
    print(f"revoked {args.key_id}")


def migrate(args):
    with _database(args) as settings:
        from .serve import redact_url
        print(f"database {redact_url(settings.database_url)} is up to date")


def backup_command(args):
    from models.db import backup
    from .cli import UsageError
    with _database(args) as settings:
        if not settings.database_url.startswith("sqlite:///"):
            raise UsageError("backup copies SQLite databases; for PostgreSQL use pg_dump")
        try:
            pages = backup(args.path)
        except FileExistsError:
            raise UsageError(f"{args.path} exists; give a new file name") from None
        except OSError as exc:
            raise UsageError(f"cannot write {args.path}: {exc.strerror or exc}") from None
    print(f"backed up to {args.path} ({pages} pages)")
