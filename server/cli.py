"""The `actorflow` command: server-side subcommands and a client for a running server.

    actorflow [serve]                      run the server (the default)
    actorflow create-key|list-keys|revoke-key|migrate|backup PATH
    actorflow workflows|graph|run|executions|logs|deploy|undeploy|arm ...

Settings flags may stand before or after the subcommand. A usage problem or a
setting/start-up problem prints one line on stderr and exits 2.
"""

import argparse
import os
import sys

from . import __version__
from . import settings as settings_mod

USAGE = 2
# The packages that make up Actorflow; each carries ACTORFLOW = True.
PACKAGES = ("server", "actors", "models", "schemas")


class UsageError(Exception):
    """A command given wrongly; exit status 2."""


class _Parser(argparse.ArgumentParser):
    def __init__(self, *args, **kw):
        kw.setdefault("allow_abbrev", False)   # `--api-key` must not mean `--api-key-file`
        super().__init__(*args, **kw)

    def error(self, message):
        self.print_usage(sys.stderr)
        self.exit(USAGE, f"{self.prog}: error: {message}\n")


def _formatter(prog):
    return argparse.RawDescriptionHelpFormatter(prog, max_help_position=34)


def build_parser(prog="actorflow"):
    from . import admin, client_commands
    root = _Parser(prog=prog, formatter_class=_formatter,
                   description="Actorflow: a self-hosted workflow engine.\n\n"
                               "With no command, `serve`. Settings come from flags, then ACTORFLOW_* "
                               "variables, then a config file (--config), then defaults.")
    root.add_argument("--version", action="version", version=f"actorflow {__version__}")
    settings_mod.add_flags(root)
    client_commands.add_client_flags(root)
    sub = root.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    def command(name, help, func, settings=True, client=False, **kw):
        parser = sub.add_parser(name, help=help, description=help, formatter_class=_formatter, **kw)
        if settings:
            settings_mod.add_flags(parser)
        if client:
            client_commands.add_client_flags(parser)
        parser.set_defaults(func=func)
        return parser

    admin.add_commands(command)
    client_commands.add_commands(sub, _formatter)
    return root


def main(argv=None, prog=None):
    """Entry point of the `actorflow` console script (and of run.py)."""
    prog = prog or os.path.basename(sys.argv[0]) or "actorflow"
    problem = check_packages()
    if problem:
        print(f"{prog}: error: {problem}", file=sys.stderr)
        return USAGE
    from .serve import StartupError
    parser = build_parser(prog)
    args = parser.parse_args(argv)
    func = getattr(args, "func", None)
    if func is None:
        from .admin import serve_command as func
    try:
        return func(args) or 0
    except (settings_mod.SettingsError, StartupError, UsageError) as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return USAGE
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (`actorflow run ... | head`): stop quietly.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


def check_packages():
    """A message if a package Actorflow needs resolves to another project's, else None.

    `server`, `actors`, `models` and `schemas` are generic names: another
    installed project (or a folder in the working directory) may shadow one.
    """
    import importlib
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    for name in PACKAGES:
        try:
            module = importlib.import_module(name)
        except ImportError as exc:
            return f"cannot import Actorflow's package {name!r} ({exc}); reinstall actorflow"
        origin = os.path.dirname(os.path.dirname(os.path.abspath(getattr(module, "__file__", "") or "")))
        if not getattr(module, "ACTORFLOW", False) or origin != here:
            where = getattr(module, "__file__", None) or "a namespace package"
            return (f"the package {name!r} resolves to {where}, which is not Actorflow's; "
                    f"another project uses the same top-level name. Run actorflow from its own "
                    f"virtual environment, or remove the other {name!r} from the path")
    return None
