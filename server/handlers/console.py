"""The web console: its page at `/` and its static files under `/console/`, with a strict CSP."""

import os

import tornado.web

CONSOLE_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "console")

# No inline script or style, nothing from elsewhere: the console talks only to this origin.
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'none'; "
       "frame-ancestors 'none'")


def _secure(handler):
    handler.set_header("Content-Security-Policy", CSP)
    handler.set_header("X-Content-Type-Options", "nosniff")
    handler.set_header("Referrer-Policy", "no-referrer")
    handler.set_header("X-Frame-Options", "DENY")


class ConsoleFileHandler(tornado.web.StaticFileHandler):
    """Files of the console; `/` is its index.html."""

    def set_extra_headers(self, path):
        _secure(self)
        # Revalidate each load: the files change with the server, not with a build hash.
        self.set_header("Cache-Control", "no-cache")

    def write_error(self, status_code, **kwargs):
        self.set_header("Content-Type", "application/json; charset=UTF-8")
        self.finish({"error": "not found" if status_code == 404 else self._reason})
