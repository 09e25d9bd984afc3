"""Workspaces and the API keys that open them. Keys are stored only as hashes."""

import hashlib

import peewee

from .base import BaseModel, new_id, new_token, utcnow


class Workspace(BaseModel):
    pk = peewee.AutoField()
    id = peewee.CharField(unique=True, default=new_id)
    name = peewee.CharField(unique=True)
    created_at = peewee.DateTimeField(default=utcnow)


class ApiKey(BaseModel):
    pk = peewee.AutoField()
    id = peewee.CharField(unique=True, default=new_id)
    workspace = peewee.ForeignKeyField(Workspace, field="id", backref="keys",
                                       on_delete="CASCADE")
    label = peewee.CharField(default="")
    key_hash = peewee.CharField(unique=True)
    created_at = peewee.DateTimeField(default=utcnow)
    revoked_at = peewee.DateTimeField(null=True)


KEY_PREFIX = "af_"


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def workspace_for_key(key: str) -> str | None:
    """The workspace id a live key belongs to, or None."""
    row = (ApiKey.select(ApiKey.workspace)
           .where(ApiKey.key_hash == hash_key(key), ApiKey.revoked_at.is_null())
           .tuples().first())
    return row[0] if row else None


def ensure_workspace(name: str) -> Workspace:
    ws = Workspace.get_or_none(Workspace.name == name)
    if ws is None:
        ws = Workspace.create(name=name)
    return ws


def create_key(workspace: str = "default", label: str = "", key: str | None = None):
    """Make a key (or register `key`) in a workspace; returns (ApiKey, key).

    Registering a key that was revoked returns its row still revoked: a
    revocation is never undone by a restart with the same bootstrap key.
    """
    ws = ensure_workspace(workspace)
    key = key or KEY_PREFIX + new_token(24)
    row = ApiKey.get_or_none(ApiKey.key_hash == hash_key(key))
    if row is None:
        row = ApiKey.create(workspace=ws.id, label=label, key_hash=hash_key(key))
    return row, key


def any_key() -> bool:
    return ApiKey.select().where(ApiKey.revoked_at.is_null()).exists()


def list_keys():
    query = (ApiKey.select(ApiKey, Workspace)
             .join(Workspace, on=(ApiKey.workspace == Workspace.id))
             .order_by(ApiKey.pk))
    return list(query)


def revoke_key(key_id: str) -> bool:
    count = (ApiKey.update(revoked_at=utcnow())
             .where(ApiKey.id == key_id, ApiKey.revoked_at.is_null()).execute())
    return count > 0
