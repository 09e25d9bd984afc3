"""http: call an API. Output is {status, headers, body}."""

from . import BlockType, checks

METHODS = {"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"}


def check(config):
    problems = checks.common(config) + checks.string(config, "url", required=True)
    method = config.get("method")
    if method is not None and not checks.is_template(method) and (
            not isinstance(method, str) or method.upper() not in METHODS):
        problems.append(("method", f"method must be one of {', '.join(sorted(METHODS))}"))
    problems += checks.mapping(config, "headers")
    fos = config.get("fail_on_status")
    if fos is not None and not isinstance(fos, bool) and not checks.is_template(fos):
        problems.append(("fail_on_status", "fail_on_status must be true or false"))
    return problems


def run(ctx):
    from ..http_request import call
    return call(ctx)


async def wait(ctx):
    from ..http_request import wait
    return await wait(ctx)


TYPE = BlockType("http", check, run, uses_inputs=False, wait=wait)
