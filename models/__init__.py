"""Peewee models and the queries on them (SQL lives only in this package).

A running server writes through its one writer thread (`models.writer`) and
reads on its reader pool (`models.store`). Start-up writes directly, on its
own thread, before any request is served: the schema migration, this
process's registration, the claim on runs of stopped servers and the first
API key. The admin commands (`actorflow create-key`, ...) run without a
server and write directly too.
"""

ACTORFLOW = True  # tells this package from another project's of the same name
