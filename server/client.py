"""A small client for a running Actorflow server's HTTP API (used by the command line)."""

import json
import os

DEFAULT_URL = "http://127.0.0.1:8080"


class ClientError(Exception):
    """The server refused or could not be reached; `status` is the exit status to use."""

    def __init__(self, message, status=1, body=None):
        super().__init__(message)
        self.status = status
        self.body = body


def find_key(key_file=None, environ=os.environ, config_key_file=None):
    """The API key: --key-file, else ACTORFLOW_KEY, else ACTORFLOW_KEY_FILE, else the config file's key_file."""
    path = key_file or (None if environ.get("ACTORFLOW_KEY")
                        else environ.get("ACTORFLOW_KEY_FILE") or config_key_file)
    if path:
        try:
            with open(path, encoding="utf-8") as f:
                key = f.read().strip()
        except OSError as exc:
            raise ClientError(f"cannot read key file {path}: {exc.strerror}", status=2) from None
        if not key:
            raise ClientError(f"key file {path} is empty", status=2)
        return key
    key = environ.get("ACTORFLOW_KEY")
    if not key:
        raise ClientError("no API key: set ACTORFLOW_KEY or give --key-file "
                          "(make one with `actorflow create-key`)", status=2)
    return key


class Api:
    """JSON over HTTP with a bearer key. Errors become ClientError with the server's message."""

    def __init__(self, url, key):
        import httpx2  # here, not at the top: `actorflow serve` builds this parser too and needs none of it
        self.url = url.rstrip("/")
        self._http = httpx2.Client(base_url=self.url, headers={"Authorization": f"Bearer {key}"},
                                   timeout=httpx2.Timeout(60.0, connect=10.0))

    def close(self):
        self._http.close()

    def call(self, method, path, body=None):
        import httpx2
        try:
            resp = self._http.request(method, path, json=body)
        except httpx2.HTTPError as exc:
            raise ClientError(f"cannot reach {self.url}: {exc}; is the server running? "
                              "(set ACTORFLOW_URL or --url)") from None
        try:
            data = resp.json()
        except ValueError:
            data = None
        if resp.status_code >= 400:
            raise ClientError(error_text(resp.status_code, data), body=data)
        return data

    def get(self, path):
        return self.call("GET", path)

    def post(self, path, body=None):
        return self.call("POST", path, {} if body is None else body)

    def stream(self, path, body):
        """Yield the events of an SSE answer, as dicts, until it ends."""
        import httpx2
        timeout = httpx2.Timeout(None, connect=10.0)
        try:
            with self._http.stream("POST", path, json=body, timeout=timeout) as resp:
                if resp.status_code >= 400:
                    resp.read()
                    try:
                        data = resp.json()
                    except ValueError:
                        data = None
                    raise ClientError(error_text(resp.status_code, data), body=data)
                for line in resp.iter_lines():
                    if line.startswith("data:"):
                        yield json.loads(line[5:].strip())
        except httpx2.HTTPError as exc:
            raise ClientError(f"lost the stream from {self.url}: {exc}") from None


def error_text(status, data):
    """One line from an error answer; validation details are listed on the following lines."""
    if not isinstance(data, dict):
        return f"server answered {status}"
    text = f"{data.get('error') or 'error'} ({status})"
    for detail in data.get("details") or []:
        if isinstance(detail, dict):
            where = detail.get("path", "")
            who = detail.get("block_id") or "->".join(
                str(detail[k]) for k in ("source", "target") if detail.get(k))
            text += f"\n  {where}{f' [{who}]' if who else ''}: {detail.get('message', '')}"
    return text
