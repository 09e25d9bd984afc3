"""Tornado side of Actorflow: the application, its handlers and settings."""

ACTORFLOW = True  # tells this package from another project's of the same name

__version__ = "0.1.0"
