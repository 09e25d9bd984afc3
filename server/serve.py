"""`actorflow serve`: bind, start the runtime, serve until a signal, drain.

Problems an operator can fix (port in use, bad host, a data directory that
cannot be written, a database that cannot be opened) are StartupError: one
line naming the problem and the fix, exit status 2, no traceback.
"""

import asyncio
import errno
import logging
import os
import signal
import socket
import sys

from . import __version__

log = logging.getLogger("actorflow")


# Connections accepted by the kernel before we take them. Tornado's default (128)
# drops the rest of a burst of clients, whose SYN is retried only after 1 s, then 3 s.
# The kernel caps it at net.core.somaxconn.
LISTEN_BACKLOG = 4096


class StartupError(Exception):
    """The server cannot start; the message says why and what to change."""


def serve(settings):
    from . import logformat
    from .one_cpu import OneCpu
    logformat.configure(settings.log_format)
    # Before any thread starts: each inherits the CPU of the thread that starts it.
    one_cpu = OneCpu.start() if settings.one_cpu else None
    return asyncio.run(_serve(settings, one_cpu))


def bind(host, port):
    """Listening sockets for host:port, or a StartupError naming the fix."""
    from tornado.netutil import bind_sockets
    try:
        return bind_sockets(port, host, backlog=LISTEN_BACKLOG)
    except socket.gaierror as exc:
        raise StartupError(f"cannot listen on host {host!r}: {exc.strerror}; "
                           "set --host / ACTORFLOW_HOST to an address or name of this machine, "
                           "e.g. 127.0.0.1 or 0.0.0.0") from None
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise StartupError(f"port {port} on {host} is already in use: stop the program using it "
                               "or choose another with --port / ACTORFLOW_PORT") from None
        if exc.errno == errno.EADDRNOTAVAIL:
            raise StartupError(f"cannot listen on {host}: not an address of this machine; "
                               "set --host / ACTORFLOW_HOST, e.g. 127.0.0.1 or 0.0.0.0") from None
        if exc.errno == errno.EACCES:
            raise StartupError(f"not allowed to listen on port {port}: choose a port above 1023 "
                               "with --port / ACTORFLOW_PORT, or run with the needed privilege") from None
        raise StartupError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None


def check_data_dir(database_url):
    """Make sure an SQLite database's folder exists and can be written."""
    if not database_url.startswith("sqlite:///"):
        return
    path = database_url[len("sqlite:///"):]
    if path == ":memory:":
        return
    directory = os.path.dirname(os.path.abspath(path))
    fix = "choose another with --database-url / ACTORFLOW_DATABASE_URL or fix its permissions"
    try:
        os.makedirs(directory, mode=0o700, exist_ok=True)
    except OSError as exc:
        raise StartupError(f"cannot create data directory {directory}: {exc.strerror}; {fix}") from None
    probe = os.path.join(directory, f".actorflow-write-test-{os.getpid()}")
    try:
        os.close(os.open(probe, os.O_CREAT | os.O_WRONLY | os.O_EXCL, 0o600))
        os.unlink(probe)
    except OSError as exc:
        raise StartupError(f"data directory {directory} is not writable: {exc.strerror}; {fix}") from None


def open_runtime(settings, io_loop, cpus=None):
    """The Runtime, with database failures turned into StartupError. `cpus`: those code
    blocks run on, when the server's own threads are on fewer."""
    import peewee
    from .runtime import Runtime
    check_data_dir(settings.database_url)
    try:
        return Runtime(settings, io_loop, cpus=cpus)
    except (peewee.OperationalError, peewee.DatabaseError, OSError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise StartupError(f"cannot open database {redact_url(settings.database_url)}: {reason}; "
                           "check --database-url / ACTORFLOW_DATABASE_URL") from None


def redact_url(url):
    """A database URL without its password."""
    from urllib.parse import urlsplit, urlunsplit
    parts = urlsplit(url)
    if parts.password:
        netloc = parts.netloc.replace(":" + parts.password + "@", ":***@")
        return urlunsplit(parts._replace(netloc=netloc))
    return url


def bootstrap_key(settings):
    """Make ACTORFLOW_API_KEY exist, or print a first key; a revoked one stays revoked."""
    from models import workspace as ws
    if settings.api_key:
        row, _ = ws.create_key("default", "ACTORFLOW_API_KEY", key=settings.api_key)
        if row.revoked_at is not None:
            log.warning("ACTORFLOW_API_KEY was revoked (key %s) and stays revoked; "
                        "make a new key with `actorflow create-key`", row.id)
    elif not ws.any_key():
        _, key = ws.create_key("default", "first key")
        print(f"No API key existed, so one was made. It is shown only this once:\n{key}", flush=True)


async def _serve(settings, one_cpu=None):
    from tornado.ioloop import IOLoop, PeriodicCallback
    from .app import make_app, make_server
    from .ioloop import PausingIOLoop
    from .memory import tune_collector
    from .one_cpu import CHECK_EVERY

    PausingIOLoop()   # IOLoop.current() from here on
    sockets = bind(settings.host, settings.port)
    try:
        runtime = open_runtime(settings, IOLoop.current(), one_cpu.spread if one_cpu else None)
    except StartupError:
        for sock in sockets:
            sock.close()
        raise
    bootstrap_key(settings)
    server = make_server(make_app(runtime))
    server.add_sockets(sockets)
    runtime.listening_on(sockets)
    runtime.housekeeper.pacer = tune_collector(lambda: len(runtime.runs.live))
    if one_cpu is not None:
        PeriodicCallback(one_cpu.check, CHECK_EVERY * 1000, jitter=0.2).start()
    # Before the line below: whoever waits for it may stop us at once.
    signals = asyncio.Queue()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, signals.put_nowait, sig)
    port = sockets[0].getsockname()[1]
    # Scripts and tests wait for a line starting `Actorflow listening on URL`.
    print(f"Actorflow listening on http://{settings.host}:{port} (version {__version__}, "
          f"database {redact_url(settings.database_url)}, data directory {data_dir(settings)})", flush=True)
    await signals.get()
    log.info("stopping: no new requests; letting runs finish (grace %ss)", settings.shutdown_grace)
    server.stop()
    drain = asyncio.ensure_future(runtime.shutdown())
    hurry = asyncio.ensure_future(signals.get())
    await asyncio.wait([drain, hurry], return_when=asyncio.FIRST_COMPLETED)
    if not drain.done():
        # A second Ctrl-C: stop waiting for runs; fail them now and close.
        log.warning("second signal: not waiting for running executions; failing them and stopping now")
        drain.cancel()
        await asyncio.gather(drain, return_exceptions=True)
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, _exit_now)
        await runtime.shutdown(grace=0)
    hurry.cancel()
    await server.close_all_connections()
    log.info("stopped")
    return 0


def _exit_now():
    log.warning("third signal: exiting without cleanup")
    sys.stderr.flush()
    os._exit(1)


def data_dir(settings):
    url = settings.database_url
    if url.startswith("sqlite:///") and url != "sqlite:///:memory:":
        return os.path.dirname(os.path.abspath(url[len("sqlite:///"):]))
    return "-"
