"""The console's files: served without a key, with a strict CSP, and nothing outside its folder."""

import os
import re

import pytest

from server.handlers.console import CONSOLE_DIR


@pytest.mark.gen_test
async def test_index_is_served_with_a_strict_csp(api):
    status, body, response = await api.call("GET", "/", key=None)
    assert status == 200 and response.headers["Content-Type"].startswith("text/html")
    csp = response.headers["Content-Security-Policy"]
    assert "script-src 'self';" in csp and "style-src 'self';" in csp and "default-src 'none'" in csp
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert '<script type="module" src="/console/js/app.js">' in body


@pytest.mark.gen_test
async def test_every_console_file_is_served_and_has_no_inline_code(api):
    names = [os.path.relpath(os.path.join(root, f), CONSOLE_DIR)
             for root, _, files in os.walk(CONSOLE_DIR) for f in files]
    assert "js/app.js" in names and "app.css" in names
    for name in names:
        status, body, response = await api.call("GET", "/console/" + name, key=None)
        assert status == 200, name
        assert "Content-Security-Policy" in response.headers
        if name.endswith(".html"):
            # no inline script or style, no event-handler attributes, nothing from elsewhere
            assert not re.search(r"<script(?![^>]*\bsrc=)|<style|\sstyle=|\son\w+=|https?://", body), name
        if name.endswith(".js"):
            assert "innerHTML" not in body and "insertAdjacentHTML" not in body and "eval(" not in body, name


@pytest.mark.gen_test
async def test_unknown_and_outside_files_are_404_json(api):
    for path in ("/console/nope.js", "/console/..%2F..%2Fsetup.cfg", "/console/%2e%2e/app.py"):
        status, body, response = await api.call("GET", path, key=None)
        assert status in (403, 404) and "error" in body, (path, status, body)
    status, body = await api.get("/api/nope", key=None)
    assert status == 404 and "error" in body


def test_vendored_libraries_are_pinned_and_listed_with_their_licences():
    static = os.path.join(os.path.dirname(CONSOLE_DIR), "static")
    docs = open(os.path.join(os.path.dirname(CONSOLE_DIR), "..", "docs", "console.md"), encoding="utf-8").read()
    vendored = sorted(os.listdir(static))
    assert vendored
    for name in vendored:
        files = os.listdir(os.path.join(static, name))
        assert "LICENSE" in files, name
        readme = open(os.path.join(static, name, "README.md"), encoding="utf-8").read()
        package, version = re.search(r"`([\w.-]+)` (\d+\.\d+\.\d+)", readme).groups()
        # the docs' table names the same package at the same version, with its licence
        row = re.search(rf"^\| `{re.escape(package)}`.*\| {re.escape(version)} \| (\S+)", docs, re.M)
        assert row, (package, version)
        assert row.group(1) in readme, (package, row.group(1))
