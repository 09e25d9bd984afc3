"""A real HTTP echo server on a free port, in a background thread, for the http block's tests.

Routes (any method):
  /echo...             200 JSON {method, path, query, headers (lower-cased), body, json}
  /status/<code>       that status, JSON {"status": code}
  /redirect/<n>        302 to /redirect/<n-1>; /redirect/0 redirects to /echo
  /goto?to=<url>       302 to that url (any status with &status=)
  /text                200 text/plain "hello, world"
  /gzip                200 like /echo, its body gzip-compressed (Content-Encoding: gzip)
  /bad-json            200 application/json that is not JSON
  /big/<bytes>         200 application/octet-stream of that many bytes (no content-length)
  /slow/<seconds>      waits, then answers like /echo
  /drip                200, then one byte every 0.1 s for a minute
  /flaky/<name>/<n>    500 for the first n requests with that name, then answers like /echo
  /barrier/<name>/<n>  waits (5 s at most) until n requests wait on that barrier, then answers
                       like /echo; 500 when the others never came (the calls were not concurrent)
  /gate/<name>?tag=t   waits until the test calls `open_gate(name)` (30 s at most), then answers
                       like /echo; `held(name)` lists the tags waiting there now,
                       `most_held[name]` is the most that ever waited at once
Every request is recorded in `server.requests`.
"""

import gzip
import json
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"
    server_version = "EchoServer/1.0"

    def log_message(self, *args):
        pass

    def _handle(self):
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        parts = urllib.parse.urlsplit(self.path)
        text = raw.decode("utf-8", errors="replace")
        try:
            parsed = json.loads(text) if text else None
        except ValueError:
            parsed = None
        seen = {"method": self.command, "path": parts.path,
                "query": dict(urllib.parse.parse_qsl(parts.query)),
                "headers": {k.lower(): v for k, v in self.headers.items()},
                "body": text, "json": parsed}
        self.server.owner.requests.append(seen)
        path = parts.path
        try:
            if path.startswith("/status/"):
                code = int(path.split("/")[2])
                return self._json(code, {"status": code, "method": self.command})
            if path.startswith("/redirect/"):
                n = int(path.split("/")[2])
                target = f"/redirect/{n - 1}" if n > 0 else "/echo/redirected"
                self.send_response(302)
                self.send_header("Location", target)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            if path == "/goto":
                query = dict(urllib.parse.parse_qsl(parts.query))
                self.send_response(int(query.get("status", 302)))
                self.send_header("Location", query["to"])
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            if path == "/text":
                return self._send(200, b"hello, world", "text/plain; charset=utf-8")
            if path == "/bad-json":
                return self._send(200, b"{not json", "application/json")
            if path.startswith("/big/"):
                size = int(path.split("/")[2])
                self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
                self.end_headers()
                block = b"x" * 65536
                while size > 0:
                    self.wfile.write(block[:size])
                    size -= len(block)
                return
            if path.startswith("/flaky/"):
                _, _, name, n = path.split("/")[:4]
                if sum(r["path"].startswith(f"/flaky/{name}/") for r in list(self.server.owner.requests)) <= int(n):
                    return self._json(500, {"error": "flaky", "name": name})
            if path.startswith("/barrier/"):
                _, _, name, n = path.split("/")[:4]
                try:
                    self.server.owner.barrier(name, int(n)).wait(timeout=5)
                except threading.BrokenBarrierError:
                    return self._json(500, {"error": "the other requests never came"})
            if path.startswith("/gate/"):
                self.server.owner.pass_gate(path.split("/")[2],
                                            dict(urllib.parse.parse_qsl(parts.query)).get("tag"))
            if path.startswith("/slow/"):
                time.sleep(float(path.split("/")[2]))
            if path == "/drip":
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.end_headers()
                for _ in range(600):
                    self.wfile.write(b".")
                    self.wfile.flush()
                    time.sleep(0.1)
                return
            if path == "/gzip":
                return self._send(200, gzip.compress(json.dumps(seen).encode()), "application/json",
                                  {"Content-Encoding": "gzip"})
            self._json(200, seen, extra_headers={"X-Echo": "yes"})
        except (BrokenPipeError, ConnectionResetError):
            pass

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = _handle

    def do_HEAD(self):
        self.server.owner.requests.append({"method": "HEAD", "path": self.path})
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", "5")
        self.end_headers()

    def _json(self, status, value, extra_headers=None):
        self._send(status, json.dumps(value).encode(), "application/json", extra_headers)

    def _send(self, status, data, content_type, extra_headers=None):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        for k, v in (extra_headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)


class EchoServer:
    def __init__(self, host="127.0.0.1"):
        self.requests = []
        self._lock = threading.Lock()
        self._barriers = {}
        self._gates = {}
        self._held = {}
        self.most_held = {}
        self._httpd = ThreadingHTTPServer((host, 0), _Handler)
        self._httpd.daemon_threads = True
        self._httpd.owner = self
        self.port = self._httpd.server_address[1]
        self.url = f"http://{host}:{self.port}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.05,),
                                        name="echo-server", daemon=True)

    def barrier(self, name, parties):
        with self._lock:
            if name not in self._barriers:
                self._barriers[name] = threading.Barrier(parties)
            return self._barriers[name]

    def _gate(self, name):
        with self._lock:
            return self._gates.setdefault(name, threading.Event())

    def pass_gate(self, name, tag):
        with self._lock:
            held = self._held.setdefault(name, [])
            held.append(tag)
            self.most_held[name] = max(self.most_held.get(name, 0), len(held))
        try:
            self._gate(name).wait(30)
        finally:
            with self._lock:
                self._held[name].remove(tag)

    def open_gate(self, name):
        self._gate(name).set()

    def held(self, name):
        with self._lock:
            return list(self._held.get(name, ()))

    def start(self):
        self._thread.start()
        return self

    def stop(self):
        for gate in list(self._gates.values()):
            gate.set()
        self._httpd.shutdown()
        self._httpd.server_close()
