"""make_app: the route table; make_server: the HTTP server's own limits."""

import tornado.web

from .access_log import log_request
from .framing import HEADER_LIMIT, HTTPServer
from .handlers import base, console, deploy, docs, executions, stream, versions, webhooks, workflows
from .handlers.metrics import MetricsHandler
from .stalls import Stalls

WF = r"/api/workflows/([^/]+)"
EX = WF + r"/executions/([^/]+)"

# Every handler reads its body in pieces and answers 413 (JSON) past its own
# limit, so tornado's limit must never be the one reached: it would answer
# with an empty 400 (or buffer the body whole).
UNLIMITED_BODY = 1 << 62


def make_app(runtime) -> tornado.web.Application:
    deps = {"runtime": runtime}
    # tornado tries the routes in order (one regex each) until one matches, and no
    # two of these match the same path: the ones that start runs go first.
    routes = [
        (WF + r"/execute/?", executions.ExecuteHandler),
        (WF + r"/execute/stream/?", stream.ExecuteStreamHandler),
        (r"/api/webhooks/([^/]+)/?", webhooks.WebhookHandler),
        (r"/api/health/?", base.HealthHandler),
        (r"/api/workflows/?", workflows.WorkflowsHandler),
        (WF + r"/?", workflows.WorkflowHandler),
        (WF + r"/graph/?", workflows.GraphHandler),
        (WF + r"/versions/?", versions.VersionsHandler),
        (WF + r"/versions/([^/]+)/?", versions.VersionHandler),
        (WF + r"/versions/([^/]+)/restore/?", versions.RestoreVersionHandler),
        (WF + r"/deploy/?", deploy.DeployHandler),
        (WF + r"/undeploy/?", deploy.UndeployHandler),
        (WF + r"/arm/?", deploy.ArmHandler),
        (WF + r"/executions/?", executions.ExecutionsHandler),
        (EX + r"/?", executions.ExecutionHandler),
        (EX + r"/logs/?", executions.LogsHandler),
        (EX + r"/cancel/?", executions.CancelHandler),
        (EX + r"/stream/?", stream.ReattachHandler),
        (r"/api/openapi.json", docs.OpenAPIHandler),
        (r"/api/docs/?", docs.DocsPageHandler),
        (r"/api/docs/([^/]+)", docs.DocsAssetHandler),
        (r"/metrics", MetricsHandler),
    ]
    static = {"path": console.CONSOLE_DIR}
    pages = [
        (r"/()", console.ConsoleFileHandler, {**static, "default_filename": "index.html"}),
        (r"/console/(.+)", console.ConsoleFileHandler, static),
    ]
    return tornado.web.Application(
        [(pattern, handler, deps) for pattern, handler in routes] + pages,
        default_handler_class=base.NotFoundHandler,
        default_handler_args=deps,
        compress_response=False,
        log_function=log_request,
    )


# Bytes read from a socket at a time. tornado reads into a new zero-filled buffer
# of this size on every read, and a read that finds nothing waiting costs one too:
# its default (64 KiB) zeroed 128 KiB per small request.
READ_CHUNK = 16384


def make_server(app: tornado.web.Application) -> HTTPServer:
    """The HTTP server for `app`. A client that stalls is dropped (idle 120 s, body 60 s)."""
    return HTTPServer(app, max_body_size=UNLIMITED_BODY, max_header_size=HEADER_LIMIT,
                      chunk_size=READ_CHUNK, stalls=Stalls(idle=120.0, body=60.0))
