"""Settings, read once at start-up.

Each setting comes from, strongest first: a command-line flag, its
`ACTORFLOW_*` environment variable, the config file (`--config` or
`ACTORFLOW_CONFIG`, TOML with the settings' names as keys), the default.
Secrets (`api_key`, `llm_api_key`) are never flags, so they never show in
`ps`: give them in the environment or in a file (`--api-key-file`).
Every value is checked here; a bad one is a SettingsError naming the fix.
"""

import argparse
import dataclasses
import math
import os
import tomllib

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
    max_edges: int = 20000
    max_block_threads: int = 256
    max_value_bytes: int = 16 * 1024 * 1024
    db_busy_timeout: float = 10.0
    db_readers: int = 4
    llm_base_url: str | None = None
    llm_api_key: str | None = None
    llm_model: str | None = None
    public_url: str | None = None
    keepalive_interval: float = 15.0
    heartbeat_interval: float = 5.0
    schedule_interval: float = 1.0
    keep_versions: int = 100
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
    resume: bool = True     # runs of a stopped server go on (false: they are marked failed)
    max_map_items: int = 10000  # items one map block may run over
    reattach_poll: float | None = None  # re-attached runs of other processes: seconds between reads
    one_cpu: bool = True    # the server's threads share one CPU (server/one_cpu.py)

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
    "max_edges": ("ACTORFLOW_MAX_EDGES", int),
    "max_block_threads": ("ACTORFLOW_MAX_BLOCK_THREADS", int),
    "max_value_bytes": ("ACTORFLOW_MAX_VALUE_BYTES", int),
    "db_busy_timeout": ("ACTORFLOW_DB_BUSY_TIMEOUT", float),
    "db_readers": ("ACTORFLOW_DB_READERS", int),
    "llm_base_url": ("ACTORFLOW_LLM_BASE_URL", str),
    "llm_api_key": ("ACTORFLOW_LLM_API_KEY", str),
    "llm_model": ("ACTORFLOW_LLM_MODEL", str),
    "public_url": ("ACTORFLOW_PUBLIC_URL", str),
    "keepalive_interval": ("ACTORFLOW_KEEPALIVE_INTERVAL", float),
    "heartbeat_interval": ("ACTORFLOW_HEARTBEAT_INTERVAL", float),
    "schedule_interval": ("ACTORFLOW_SCHEDULE_INTERVAL", float),
    "keep_versions": ("ACTORFLOW_KEEP_VERSIONS", int),
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
    "resume": ("ACTORFLOW_RESUME", flag),
    "max_map_items": ("ACTORFLOW_MAX_MAP_ITEMS", int),
    "reattach_poll": ("ACTORFLOW_REATTACH_POLL", float),
    "one_cpu": ("ACTORFLOW_ONE_CPU", flag),
}

# name -> what it means, for --help (docs/api.md has the longer story).
MEANINGS = {
    "host": "address to listen on",
    "port": "port to listen on (0: any free port, printed on start)",
    "database_url": "sqlite:///relative.db, sqlite:////absolute.db or postgresql://...",
    "api_key": "a key made to exist in workspace default on start",
    "execute_timeout": "longest run, seconds",
    "arm_window": "how long an arm lasts, seconds",
    "shutdown_grace": "on SIGTERM/SIGINT, seconds running executions may finish",
    "max_body": "largest API or webhook body, bytes",
    "max_graph_body": "largest PUT /graph body, bytes",
    "max_blocks": "most blocks in one graph",
    "max_edges": "most edges in one graph",
    "max_block_threads": "most block threads alive at once, across all runs",
    "max_value_bytes": "largest block output or variables, bytes",
    "db_busy_timeout": "seconds to wait for a locked database",
    "db_readers": "threads reading the database",
    "llm_base_url": "OpenAI-compatible provider for llm and agent blocks",
    "llm_api_key": "the LLM provider's key",
    "llm_model": "model llm and agent blocks use when they name none",
    "public_url": "base of the webhook URLs shown (unset: the request's host)",
    "keepalive_interval": "seconds between SSE keep-alive comments",
    "heartbeat_interval": "seconds between this server's heartbeats (and its look for runs of stopped servers)",
    "schedule_interval": "seconds between looks for due schedule ticks",
    "keep_versions": "graph versions kept per workflow",
    "chunk_retention": "seconds a finished run's chunks stay replayable",
    "sandbox_pool": "warm processes kept for code blocks",
    "code_memory_mb": "memory limit of one code block process, MiB",
    "code_cpu_seconds": "CPU time limit of one code block process, seconds",
    "code_concurrency": "most code blocks running at once, server-wide (2 x CPUs)",
    "code_network": "true: code blocks may use the network",
    "webhook_failures_per_minute": "failed webhook secrets per id per minute before 429",
    "max_depth": "deepest run a request or sub-run may start",
    "metrics": "true: Prometheus GET /metrics on the API's address",
    "metrics_address": "host:port serving only /metrics",
    "log_format": "text or json (one object per line)",
    "http_allow": "networks (CIDR, comma-separated) http blocks may always reach",
    "http_deny": "networks (CIDR) http blocks may not reach",
    "http_per_workspace": "outgoing http connections at once per workspace (0: no limit)",
    "http_per_run": "outgoing http connections at once per run (0: no limit)",
    "resume": "runs of a stopped server go on (false: they are marked failed)",
    "max_map_items": "most items one map block may run over",
    "reattach_poll": "seconds between reads of a re-attached run another process owns "
                     "(default 1, or 10 with PostgreSQL notifications)",
    "one_cpu": "true: the server's threads share one CPU, moved off one other programs crowd "
               "(code blocks keep them all)",
}


# Settings that are secrets: no flag of their own, but a file flag / variable.
SECRETS = {"api_key": "ACTORFLOW_API_KEY_FILE", "llm_api_key": "ACTORFLOW_LLM_API_KEY_FILE"}
CONFIG_ENV = "ACTORFLOW_CONFIG"
# What the client commands (`actorflow workflows ...`) may also read from the config file.
CLIENT_KEYS = ("url", "key_file")

# Numbers must be finite and >= 0 (pool sizes, counts); these must be > 0.
_POSITIVE = {"execute_timeout", "arm_window", "keepalive_interval", "heartbeat_interval",
             "max_body", "max_graph_body", "max_blocks", "max_edges", "max_block_threads", "code_memory_mb",
             "code_cpu_seconds", "schedule_interval", "keep_versions", "max_map_items", "db_readers",
             "reattach_poll", "db_busy_timeout", "code_concurrency", "max_value_bytes"}
_TRUE, _FALSE = {"1", "true", "yes", "on"}, {"0", "false", "no", "off"}


class SettingsError(ValueError):
    """A setting that cannot be used; the message names it and the fix."""


def _flag(name):
    return "--" + name.replace("_", "-")


def add_flags(parser: argparse.ArgumentParser):
    """Add one `--flag` per setting (secrets get `--NAME-file`), plus `--config`.

    Values not given are absent from the namespace (SUPPRESS), so flags put
    before a subcommand and after it both count.
    """
    defaults = Settings()
    group = parser.add_argument_group("settings (flag > ACTORFLOW_* variable > config file > default)")
    group.add_argument("--config", metavar="FILE", default=argparse.SUPPRESS,
                       help=f"TOML file of settings (or {CONFIG_ENV}; default: none)")
    for name, (env, kind) in _FIELDS.items():
        if name in SECRETS:
            group.add_argument(_flag(name), nargs="?", action=_RefuseSecret, help=argparse.SUPPRESS)
            group.add_argument(_flag(name) + "-file", dest=name + "_file", metavar="FILE",
                               default=argparse.SUPPRESS,
                               help=f"{MEANINGS.get(name, name)}: read from FILE (or {SECRETS[name]}; "
                                    f"or set {env}; default: unset)")
            continue
        default = getattr(defaults, name)
        shown = "unset" if default in (None, ()) else str(default).lower() if kind is flag else default
        group.add_argument(_flag(name), dest=name, metavar=kind.__name__.upper(),
                           default=argparse.SUPPRESS,
                           help=f"{MEANINGS.get(name, name)} ({env}; default: {shown})")


class _RefuseSecret(argparse.Action):
    """`--api-key VALUE` would show the secret in `ps`: refuse it and say what to use."""

    def __call__(self, parser, namespace, values, option_string=None):
        parser.error(f"{option_string} is not taken on the command line (it would show in ps): "
                     f"use {option_string}-file FILE or the ACTORFLOW_{option_string[2:].upper().replace('-', '_')} "
                     "variable")


def _convert(name, raw, kind, where):
    if kind is bool and isinstance(raw, str):
        if raw.strip().lower() in _TRUE | _FALSE:
            return raw.strip().lower() in _TRUE
        raise SettingsError(f"{where}={raw!r} is not true or false")
    if isinstance(raw, bool) and kind is not bool:
        raise SettingsError(f"{where}={raw!r} is not a valid {kind.__name__}")
    try:
        value = kind(raw)
    except (TypeError, ValueError) as exc:
        reason = str(exc)
        if not reason or reason == str(raw) or "invalid literal" in reason or "could not convert" in reason:
            reason = f"not a valid {kind.__name__}"
        raise SettingsError(f"{where}={raw!r}: {reason}") from None
    return value


def _check(name, value, where):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return
    if isinstance(value, float) and not math.isfinite(value):
        raise SettingsError(f"{where}={value!r} must be a finite number")
    if name == "port":
        # 0 asks the system for a free port (tests and scripts use it).
        if not 0 <= value <= 65535:
            raise SettingsError(f"{where}={value} is not a port: use 1-65535 (or 0 for any free port)")
    elif name in _POSITIVE:
        if value <= 0:
            raise SettingsError(f"{where}={value} must be greater than 0")
    elif value < 0:
        raise SettingsError(f"{where}={value} must be 0 or more")


def _read_secret(path, where):
    try:
        with open(path, encoding="utf-8") as f:
            value = f.read().strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise SettingsError(f"{where}: cannot read {path!r} ({getattr(exc, 'strerror', None) or exc}); "
                            "give a readable file holding the secret") from None
    if not value:
        raise SettingsError(f"{where}: {path!r} is empty; put the secret in it")
    return value


def _config_file(path):
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except OSError as exc:
        raise SettingsError(f"cannot read config file {path!r} ({exc.strerror}); fix --config / {CONFIG_ENV}") from None
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"config file {path!r} is not valid TOML: {exc}") from None
    unknown = sorted(set(data) - set(_FIELDS) - {k + "_file" for k in SECRETS} - set(CLIENT_KEYS))
    if unknown:
        raise SettingsError(f"config file {path!r}: unknown setting {unknown[0]!r}; "
                            f"known: {', '.join(_FIELDS)}")
    return data


def client_config(environ=None, flags=None):
    """The client commands' keys (CLIENT_KEYS) found in the config file, if one is named."""
    environ = os.environ if environ is None else environ
    flags = vars(flags) if flags is not None else {}
    path = flags.get("config") or environ.get(CONFIG_ENV) or None
    data = _config_file(path) if path else {}
    return {k: str(data[k]) for k in CLIENT_KEYS if k in data}


def load(environ=None, flags=None) -> Settings:
    """Build Settings from flags (an argparse namespace), the environment, a config file."""
    environ = os.environ if environ is None else environ
    flags = vars(flags) if flags is not None else {}
    config_path = flags.get("config") or environ.get(CONFIG_ENV) or None
    config = _config_file(config_path) if config_path else {}
    values = {}
    for name, (env, kind) in _FIELDS.items():
        if name in SECRETS:
            file_env = SECRETS[name]
            if flags.get(name + "_file"):
                values[name] = _read_secret(flags[name + "_file"], _flag(name) + "-file")
            elif environ.get(env):
                values[name] = environ[env]
            elif environ.get(file_env):
                values[name] = _read_secret(environ[file_env], file_env)
            elif config.get(name):
                values[name] = str(config[name])
            elif config.get(name + "_file"):
                values[name] = _read_secret(config[name + "_file"], f"{config_path}: {name}_file")
            continue
        if flags.get(name) is not None:
            raw, where = flags[name], _flag(name)
        elif environ.get(env) not in (None, ""):
            raw, where = environ[env], env
        elif name in config:
            raw, where = config[name], f"{config_path}: {name}"
        else:
            continue
        value = _convert(name, raw, kind, where)
        _check(name, value, where)
        values[name] = value
    settings = Settings(**values)
    _check_database_url(settings.database_url)
    return settings


def _check_database_url(url):
    scheme = url.split(":", 1)[0].lower() if ":" in url else ""
    if scheme == "sqlite":
        if not url.startswith("sqlite:///") or url == "sqlite:///":
            raise SettingsError(f"database URL {url!r} names no file: use sqlite:///relative/path.db "
                                "or sqlite:////absolute/path.db")
    elif scheme in ("postgres", "postgresql"):
        try:
            import psycopg2  # noqa: F401
        except ImportError:
            raise SettingsError("a PostgreSQL database URL needs its driver: "
                                "pip install 'actorflow[postgres]' (psycopg2-binary)") from None
    else:
        raise SettingsError(f"database URL {url!r} is neither sqlite:///... nor postgresql://...")
