"""The API's own description: /api/openapi.json and the Swagger UI at /api/docs (no key needed)."""

import os

from models.errors import NotFound
from .base import BaseHandler, dumps

STATIC = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "static", "swagger-ui")
# Only these files are served; anything else is a JSON 404.
ASSETS = {
    "swagger-ui-bundle.js": "application/javascript; charset=UTF-8",
    "swagger-ui.css": "text/css; charset=UTF-8",
    "start.js": "application/javascript; charset=UTF-8",
    "favicon-32x32.png": "image/png",
}
# Scripts only from this server (no inline script); Swagger UI sets inline styles and data: images.
CSP = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
       "img-src 'self' data:; connect-src 'self'; object-src 'none'; frame-ancestors 'none'")

_cache = {}


def _read(name):
    if name not in _cache:
        with open(os.path.join(STATIC, name), "rb") as f:
            _cache[name] = f.read()
    return _cache[name]


class OpenAPIHandler(BaseHandler):
    auth_required = False

    def get(self):
        if "openapi.json" not in _cache:
            from server.openapi import document
            _cache["openapi.json"] = dumps(document(self.application))
        self.set_header("Content-Type", "application/json; charset=UTF-8")
        self.finish(_cache["openapi.json"])


class DocsPageHandler(BaseHandler):
    auth_required = False

    def get(self):
        self.set_header("Content-Type", "text/html; charset=UTF-8")
        self.set_header("Content-Security-Policy", CSP)
        self.finish(_read("index.html"))


class DocsAssetHandler(BaseHandler):
    auth_required = False

    def get(self, name):
        if name not in ASSETS:
            raise NotFound(f"no file {name} in /api/docs")
        self.set_header("Content-Type", ASSETS[name])
        self.set_header("Cache-Control", "public, max-age=86400")
        self.finish(_read(name))
