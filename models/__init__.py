"""Peewee models and the queries that read them. Writes go through `models.writer`."""
