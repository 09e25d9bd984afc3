"""Tornado side of Actorflow: the application, its handlers and settings."""

__version__ = "0.1.0"
