"""Actorflow: `python run.py` serves; it is the `actorflow` command (see `--help`)."""

import sys

from server.cli import main

if __name__ == "__main__":
    sys.exit(main(prog="run.py"))
