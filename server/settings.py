"""Settings, read once at start-up: the environment first, then flags."""

import argparse
import dataclasses
import os

from actors.netpolicy import cidrs


@dataclasses.dataclass(frozen=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 8080
    database_url: str = "sqlite:///data/actorflow.db"
    api_key: str | None = None
    execute_timeout: float = 300.0
    arm_window: float = 600.0
    shutdown_grace: float = 30.0
    max_body: int = 1024 * 1024
    max_graph_body: int = 16 * 1024 * 1024
    max_blocks: int = 5000
    max_value_bytes: int = 16 * 1024 * 1024
    db_busy_timeout: float = 10.0
    llm_base_url: str | None = None
    llm_api_key: str | None = None
    llm_model: str | None = None
    public_url: str | None = None
    keepalive_interval: float = 15.0
    heartbeat_interval: float = 5.0
    chunk_retention: float = 300.0
    sandbox_pool: int = 2
    code_memory_mb: int = 512
    code_cpu_seconds: int = 60
    code_concurrency: int = 2 * (os.cpu_count() or 1)
    code_network: bool = False
    webhook_failures_per_minute: int = 10
    max_depth: int = 8
    metrics: bool = False
    metrics_address: str | None = None
    log_format: str = "text"
    http_allow: tuple = ()          # networks (CIDR) http blocks may always reach
    http_deny: tuple = ()           # networks they may not
    http_per_workspace: int = 50    # outgoing http connections at once, per workspace (0: no limit)
    http_per_run: int = 10          # ... and per run

    def replace(self, **changes):
        return dataclasses.replace(self, **changes)


def flag(raw: str) -> bool:
    """true/false, 1/0, yes/no, on/off (any case)."""
    value = raw.strip().lower()
    if value in ("true", "1", "yes", "on"):
        return True
    if value in ("false", "0", "no", "off"):
        return False
    raise ValueError(raw)


def count(raw: str) -> int:
    """A whole number >= 0."""
    value = int(raw)
    if value < 0:
        raise ValueError(raw)
    return value


def log_format(raw: str) -> str:
    """`text` (the default, for people) or `json` (one object per line, for log shippers)."""
    if raw.strip().lower() not in ("text", "json"):
        raise ValueError(raw)
    return raw.strip().lower()


# name -> (environment variable, type)
_FIELDS = {
    "host": ("ACTORFLOW_HOST", str),
    "port": ("ACTORFLOW_PORT", int),
    "database_url": ("ACTORFLOW_DATABASE_URL", str),
    "api_key": ("ACTORFLOW_API_KEY", str),
    "execute_timeout": ("ACTORFLOW_EXECUTE_TIMEOUT", float),
    "arm_window": ("ACTORFLOW_ARM_WINDOW", float),
    "shutdown_grace": ("ACTORFLOW_SHUTDOWN_GRACE", float),
    "max_body": ("ACTORFLOW_MAX_BODY", int),
    "max_graph_body": ("ACTORFLOW_MAX_GRAPH_BODY", int),
    "max_blocks": ("ACTORFLOW_MAX_BLOCKS", int),
    "max_value_bytes": ("ACTORFLOW_MAX_VALUE_BYTES", int),
    "db_busy_timeout": ("ACTORFLOW_DB_BUSY_TIMEOUT", float),
    "llm_base_url": ("ACTORFLOW_LLM_BASE_URL", str),
    "llm_api_key": ("ACTORFLOW_LLM_API_KEY", str),
    "llm_model": ("ACTORFLOW_LLM_MODEL", str),
    "public_url": ("ACTORFLOW_PUBLIC_URL", str),
    "keepalive_interval": ("ACTORFLOW_KEEPALIVE_INTERVAL", float),
    "heartbeat_interval": ("ACTORFLOW_HEARTBEAT_INTERVAL", float),
    "chunk_retention": ("ACTORFLOW_CHUNK_RETENTION", float),
    "sandbox_pool": ("ACTORFLOW_SANDBOX_POOL", int),
    "code_memory_mb": ("ACTORFLOW_CODE_MEMORY_MB", int),
    "code_cpu_seconds": ("ACTORFLOW_CODE_CPU_SECONDS", int),
    "code_concurrency": ("ACTORFLOW_CODE_CONCURRENCY", int),
    "code_network": ("ACTORFLOW_CODE_NETWORK", flag),
    "webhook_failures_per_minute": ("ACTORFLOW_WEBHOOK_FAILURES_PER_MINUTE", int),
    "max_depth": ("ACTORFLOW_MAX_DEPTH", int),
    "metrics": ("ACTORFLOW_METRICS", flag),
    "metrics_address": ("ACTORFLOW_METRICS_ADDRESS", str),
    "log_format": ("ACTORFLOW_LOG_FORMAT", log_format),
    "http_allow": ("ACTORFLOW_HTTP_ALLOW", cidrs),
    "http_deny": ("ACTORFLOW_HTTP_DENY", cidrs),
    "http_per_workspace": ("ACTORFLOW_HTTP_PER_WORKSPACE", count),
    "http_per_run": ("ACTORFLOW_HTTP_PER_RUN", count),
}


def add_flags(parser: argparse.ArgumentParser):
    """Add one `--flag` per setting; each defaults to None (meaning: not given)."""
    for name, (env, kind) in _FIELDS.items():
        flag = "--" + name.replace("_", "-")
        parser.add_argument(flag, dest=name, type=kind, default=None,
                            help=f"overrides {env}")


def load(environ=None, flags=None) -> Settings:
    """Build Settings from an environment mapping, then an argparse namespace."""
    environ = os.environ if environ is None else environ
    values = {}
    for name, (env, kind) in _FIELDS.items():
        raw = environ.get(env)
        if raw not in (None, ""):
            try:
                values[name] = kind(raw)
            except ValueError:
                raise SystemExit(f"{env}={raw!r} is not a valid {kind.__name__}")
        given = getattr(flags, name, None) if flags is not None else None
        if given is not None:
            values[name] = given
    return Settings(**values)
