"""make_app: the route table, and nothing else."""

import tornado.web

from .access_log import log_request
from .handlers import base, console, deploy, docs, executions, stream, webhooks, workflows
from .handlers.metrics import MetricsHandler

WF = r"/api/workflows/([^/]+)"
EX = WF + r"/executions/([^/]+)"


def make_app(runtime) -> tornado.web.Application:
    deps = {"runtime": runtime}
    routes = [
        (r"/api/health/?", base.HealthHandler),
        (r"/api/workflows/?", workflows.WorkflowsHandler),
        (WF + r"/?", workflows.WorkflowHandler),
        (WF + r"/graph/?", workflows.GraphHandler),
        (WF + r"/deploy/?", deploy.DeployHandler),
        (WF + r"/undeploy/?", deploy.UndeployHandler),
        (WF + r"/arm/?", deploy.ArmHandler),
        (WF + r"/execute/?", executions.ExecuteHandler),
        (WF + r"/execute/stream/?", stream.ExecuteStreamHandler),
        (WF + r"/executions/?", executions.ExecutionsHandler),
        (EX + r"/?", executions.ExecutionHandler),
        (EX + r"/logs/?", executions.LogsHandler),
        (EX + r"/cancel/?", executions.CancelHandler),
        (EX + r"/stream/?", stream.ReattachHandler),
        (r"/api/webhooks/([^/]+)/?", webhooks.WebhookHandler),
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
