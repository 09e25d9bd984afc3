"""A bare Tornado JSON handler: the yardstick the benchmarks compare against.

Also `POST /relay`, the yardstick for P5's streamed token: the least a
Python server can do to pass an LLM provider's tokens on to an SSE client.
"""

import asyncio
import http.client
import json
import os
import sys
import threading
from urllib.parse import urlsplit

import tornado.ioloop
import tornado.web

from server.one_cpu import current_cpu


class Echo(tornado.web.RequestHandler):
    def post(self):
        body = json.loads(self.request.body or b"{}")
        self.set_header("Content-Type", "application/json; charset=UTF-8")
        self.finish(json.dumps({"status": "completed", "output": body.get("variables", {})}))


class Relay(tornado.web.RequestHandler):
    """Body `{"url": provider base URL}`: stream a chat completion from it as SSE events.

    A thread reads the provider's lines with http.client, parses each chunk and
    hands its text to the loop, which writes it out: the same thread hop, parse
    and encode as a token through Actorflow, and nothing else (no actors, no
    run). The thread keeps to the loop's CPU, as Actorflow's threads do.
    """

    async def post(self):
        url = urlsplit(json.loads(self.request.body)["url"])
        self.set_header("Content-Type", "text/event-stream")
        self.set_header("Cache-Control", "no-cache")
        self.flush()
        loop = tornado.ioloop.IOLoop.current()
        done = asyncio.get_running_loop().create_future()
        cpu = _current_cpu()

        def send(text):
            self.write(text)
            self.flush()

        def read():
            try:
                if cpu is not None:
                    os.sched_setaffinity(0, {cpu})
                conn = http.client.HTTPConnection(url.hostname, url.port, timeout=60)
                conn.request("POST", url.path + "/chat/completions",
                             json.dumps({"model": "m", "stream": True,
                                         "messages": [{"role": "user", "content": "hi"}]}),
                             {"Content-Type": "application/json"})
                resp = conn.getresponse()
                for line in iter(resp.fp.readline, b""):
                    if not line.startswith(b"data: {"):
                        continue
                    for choice in json.loads(line[6:]).get("choices", ()):
                        text = choice.get("delta", {}).get("content")
                        if text:
                            event = json.dumps({"type": "block_chunk", "chunk": text}, separators=(",", ":"))
                            loop.add_callback(send, f"data: {event}\n\n")
                conn.close()
            finally:
                loop.add_callback(done.set_result, None)

        threading.Thread(target=read, daemon=True).start()
        await done
        self.write('data: {"type":"execution_completed"}\n\n')


def _current_cpu():
    """The CPU this thread runs on (Linux), else None."""
    try:
        with open("/proc/thread-self/stat") as f:
            return current_cpu(f.read())
    except (OSError, IndexError, ValueError):
        return None


async def main(port):
    app = tornado.web.Application([(r"/bare", Echo), (r"/relay", Relay)])
    # The same listen backlog as run.py (server/serve.py): with tornado's default of 128, a
    # burst of thousands of connections at once overflows the accept queue and the
    # dropped handshakes are tried again a second later, which times the kernel, not the handler.
    app.listen(port, "127.0.0.1", backlog=4096)
    print(f"listening on http://127.0.0.1:{port}", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1])))
