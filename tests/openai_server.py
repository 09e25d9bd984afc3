"""A real local OpenAI-compatible Chat Completions server, scriptable per test.

It runs `http.server.ThreadingHTTPServer` on a free port in a background
thread and speaks enough of the protocol for the llm and agent blocks:
POST /v1/chat/completions with `stream: true` answers `data: {chunk}` SSE
lines, a usage chunk when `stream_options.include_usage` is asked for, and
`data: [DONE]`; without `stream` it answers one ChatCompletion object.

Every request is recorded (`server.requests`: the parsed JSON bodies;
`server.headers`: their headers). Answers come from a queue, one per
request (`server.script(...)`), each one of:

  text("Hello world")                       content tokens (split on spaces, kept)
  tool_calls(("name", {"a": 1}), ...)       one or several tool calls, arguments streamed in pieces
  error(500, "message")                     an OpenAI-style JSON error with that status
  hang()                                    headers and nothing more, until the client leaves

`delay` (seconds between chunks) and `model` may be given to text() and
tool_calls(). With the queue empty, the answer is the text "ok".
"""

import json
import queue
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def text(content, delay=0.0, model=None, usage=True, tokens=None):
    if tokens is None:
        words = content.split(" ")
        tokens = [w + (" " if i < len(words) - 1 else "") for i, w in enumerate(words)]
    return {"kind": "text", "tokens": tokens, "delay": delay, "model": model, "usage": usage}


def tool_calls(*calls, content="", delay=0.0, model=None):
    """calls: (name, arguments dict) pairs."""
    return {"kind": "tools", "calls": list(calls), "content": content, "delay": delay,
            "model": model, "usage": True}


def error(status, message, error_type="server_error"):
    return {"kind": "error", "status": status, "message": message, "type": error_type}


def hang():
    return {"kind": "hang"}


def raw(body):
    """An event stream sent exactly as given (bytes), then the connection closes."""
    return {"kind": "raw", "body": body}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"
    server_version = "FakeOpenAI/1.0"

    def log_message(self, *args):
        pass

    def do_GET(self):
        if self.path.rstrip("/").endswith("/models"):
            return self._json(200, {"object": "list",
                                    "data": [{"id": "test-model", "object": "model"}]})
        self._json(404, {"error": {"message": f"no route {self.path}", "type": "not_found"}})

    def do_POST(self):
        owner = self.server.owner
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length)
        if not self.path.rstrip("/").endswith("/chat/completions"):
            return self._json(404, {"error": {"message": f"no route {self.path}",
                                              "type": "not_found"}})
        try:
            body = json.loads(raw)
        except ValueError:
            return self._json(400, {"error": {"message": "body is not JSON",
                                              "type": "invalid_request_error"}})
        with owner.lock:
            owner.requests.append(body)
            owner.headers.append({k.lower(): v for k, v in self.headers.items()})
            n = len(owner.requests)
        try:
            answer = owner.answers.get_nowait()
        except queue.Empty:
            answer = text("ok")
        try:
            self._answer(answer, body, n)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def _answer(self, answer, body, n):
        if answer["kind"] == "error":
            return self._json(answer["status"], {"error": {
                "message": answer["message"], "type": answer["type"], "param": None,
                "code": None}})
        model = answer.get("model") or body.get("model") or "unknown"
        cid = f"chatcmpl-{n}"
        created = int(time.time())
        if answer["kind"] == "raw":
            self._sse_headers()
            self.wfile.write(answer["body"])
            self.close_connection = True
            return
        if answer["kind"] == "hang":
            self._sse_headers()
            self.server.owner.hanging.wait(60)
            return
        usage = {"prompt_tokens": 7, "completion_tokens": 0, "total_tokens": 7}
        if answer["kind"] == "text":
            usage["completion_tokens"] = len(answer["tokens"])
            usage["total_tokens"] += len(answer["tokens"])
        else:
            usage["completion_tokens"] = 3 * len(answer["calls"])
            usage["total_tokens"] += 3 * len(answer["calls"])
        if not body.get("stream"):
            return self._json(200, self._whole(answer, cid, created, model, usage))

        def chunk(delta, finish=None, with_usage=None):
            data = {"id": cid, "object": "chat.completion.chunk", "created": created,
                    "model": model, "choices": [{"index": 0, "delta": delta,
                                                 "finish_reason": finish, "logprobs": None}]}
            if with_usage is not None:
                data = dict(data, choices=[], usage=with_usage)
            self.wfile.write(b"data: " + json.dumps(data).encode() + b"\n\n")
            self.wfile.flush()
            if answer.get("delay"):
                time.sleep(answer["delay"])

        self._sse_headers()
        chunk({"role": "assistant", "content": ""})
        if answer["kind"] == "text":
            for token in answer["tokens"]:
                chunk({"content": token})
            chunk({}, "stop")
        else:
            if answer["content"]:
                chunk({"content": answer["content"]})
            for i, (name, args) in enumerate(answer["calls"]):
                arguments = json.dumps(args)
                half = len(arguments) // 2
                chunk({"tool_calls": [{"index": i, "id": f"call_{n}_{i}", "type": "function",
                                       "function": {"name": name, "arguments": ""}}]})
                chunk({"tool_calls": [{"index": i, "function": {"arguments": arguments[:half]}}]})
                chunk({"tool_calls": [{"index": i, "function": {"arguments": arguments[half:]}}]})
            chunk({}, "tool_calls")
        if (body.get("stream_options") or {}).get("include_usage") and answer.get("usage"):
            chunk(None, with_usage=usage)
        self.wfile.write(b"data: [DONE]\n\n")
        self.wfile.flush()

    @staticmethod
    def _whole(answer, cid, created, model, usage):
        message = {"role": "assistant", "content": None}
        if answer["kind"] == "text":
            message["content"] = "".join(answer["tokens"])
            finish = "stop"
        else:
            message["content"] = answer["content"] or None
            message["tool_calls"] = [
                {"id": f"call_{i}", "type": "function",
                 "function": {"name": name, "arguments": json.dumps(args)}}
                for i, (name, args) in enumerate(answer["calls"])]
            finish = "tool_calls"
        return {"id": cid, "object": "chat.completion", "created": created, "model": model,
                "choices": [{"index": 0, "message": message, "finish_reason": finish,
                             "logprobs": None}], "usage": usage}

    def _sse_headers(self):
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.end_headers()
        self.wfile.flush()

    def _json(self, status, value):
        data = json.dumps(value).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class FakeOpenAI:
    def __init__(self):
        self.requests = []
        self.headers = []
        self.answers = queue.Queue()
        self.lock = threading.Lock()
        self.hanging = threading.Event()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._httpd.daemon_threads = True
        self._httpd.owner = self
        self.port = self._httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/v1"
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.05,),
                                        name="fake-openai", daemon=True)

    def script(self, *answers):
        for answer in answers:
            self.answers.put(answer)

    def start(self):
        self._thread.start()
        return self

    def stop(self):
        self.hanging.set()
        self._httpd.shutdown()
        self._httpd.server_close()
