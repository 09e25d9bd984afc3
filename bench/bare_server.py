"""A bare Tornado JSON handler: the yardstick the benchmarks compare against."""

import asyncio
import json
import sys

import tornado.web


class Echo(tornado.web.RequestHandler):
    def post(self):
        body = json.loads(self.request.body or b"{}")
        self.set_header("Content-Type", "application/json; charset=UTF-8")
        self.finish(json.dumps({"status": "completed", "output": body.get("variables", {})}))


async def main(port):
    app = tornado.web.Application([(r"/bare", Echo)])
    # The same listen backlog as run.py (server/serve.py): with tornado's default of 128, a
    # burst of thousands of connections at once overflows the accept queue and the
    # dropped handshakes are tried again a second later, which times the kernel, not the handler.
    app.listen(port, "127.0.0.1", backlog=4096)
    print(f"listening on http://127.0.0.1:{port}", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1])))
