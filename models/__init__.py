"""Peewee models and the queries that read them. Writes go through `models.writer`."""

ACTORFLOW = True  # tells this package from another project's of the same name
