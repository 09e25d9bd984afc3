"""GET /api/docs: Swagger UI from the server's own files renders every operation, under its CSP."""

from server.openapi import document
from tests_browser.page import all_css, severe_logs, wait


def test_swagger_ui_renders_every_operation(server, browser, shots):
    operations = sum(len(ops) for ops in document()["paths"].values())
    d = browser()
    d.get(f"{server.url}/api/docs")
    wait(d, lambda d: len(all_css(d, ".opblock")) == operations,
         message="Swagger UI did not render every operation")
    assert "Actorflow API" in d.find_element("css selector", ".info .title").text
    # Nothing came from another host, and no script was refused by the CSP.
    hosts = d.execute_script(
        "return performance.getEntriesByType('resource').map(e => new URL(e.name).host)")
    assert hosts and set(hosts) == {server.url.split("//", 1)[1]}, hosts
    assert severe_logs(d) == []
    shots(d, "api-docs")
