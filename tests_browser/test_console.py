"""The console end to end in headless Chromium against a real server process."""

import json
import re

import requests

from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By

from tests_browser.page import (Api, all_css, button, by_label, css, fill, no_alert, node, node_status,
                                select, select_block, set_value, severe_logs, sign_in, text_of, unlabeled, wait)

XSS = "<img src=x onerror=alert(1)>"


def add_block(driver, block_type, block_id):
    select(by_label(driver, "Block type"), block_type)
    fill(by_label(driver, "Block id"), block_id)
    button(driver, "Add block").click()
    wait(driver, lambda d: node(d, block_id))


def connect(driver, source, target, handle=None):
    select_block(driver, source)
    panel = css(driver, "#panel-block")
    select(by_label(panel, "Connect to"), target)
    if handle is not None:
        fill(by_label(panel, "Branch (handle)"), handle)
    button(panel, "Add edge").click()
    sel = f'svg.graph g.edge[data-source="{source}"][data-target="{target}"]'
    wait(driver, lambda d: all_css(d, sel))


def set_config(driver, block_id, config):
    select_block(driver, block_id)
    panel = css(driver, "#panel-block")
    set_value(driver, by_label(panel, "Config (JSON)"), json.dumps(config))
    button(panel, "Apply config").click()
    wait(driver, lambda d: "Unsaved" in text_of(d, ".toolbar [role=status]"))


def save(driver):
    button(driver, "Save").click()


def test_build_fix_run_history_deploy(server, browser, shots):
    api = Api(server.url)
    d = browser()

    # sign in: a wrong key is refused with the API's 401, the right one opens the list
    sign_in(d, server.url, key="af_wrong_key")
    wait(d, lambda d: "401" in text_of(d, ".signin .error"))
    assert not css(d, "#signout").is_displayed() and unlabeled(d) == []
    shots(d, "signin")
    sign_in(d, server.url)
    wait(d, lambda d: text_of(d, "main h1") == "Workflows")
    assert css(d, "#signout").is_displayed() and unlabeled(d) == []
    assert d.execute_script("return sessionStorage.getItem('actorflow.key')") == "af_browser_test_key_0000000000001"
    assert "af_browser" not in d.current_url

    # create a workflow whose name is markup: it shows as text
    fill(by_label(d, "New workflow name"), f"Greeter {XSS}")
    button(d, "Create").click()
    wait(d, lambda d: text_of(d, "main h1") == f"Greeter {XSS}")
    wf_id = d.current_url.split("#/wf/")[1]

    # build start -> check -[yes]-> out in the UI
    add_block(d, "starter", "start")
    add_block(d, "condition", "check")
    add_block(d, "response", "out")
    connect(d, "start", "check")
    connect(d, "check", "out", handle="yes")
    label = css(d, 'g.edge[data-source="check"] text.handle')
    assert label.text == "yes"
    set_config(d, "out", {"data": {"greeting": XSS, "n": "{{ variables.n }}"}})

    # a mistake the API catches: conditions must be a list; its details land on the block
    set_config(d, "check", {"conditions": "variables.n > 1"})
    save(d)
    wait(d, lambda d: "did not save" in text_of(d, ".problems-box"))
    assert "check" in text_of(d, ".problems-box") and "conditions must be a list" in text_of(d, ".problems-box")
    assert "problem" in node(d, "check").get_attribute("class")
    # the edge whose handle the API refused is marked too, and listed in the block's panel
    assert css(d, 'g.edge.problem[data-source="check"][data-target="out"]')
    assert "Edge check → out" in text_of(d, ".problems-box")
    assert "conditions must be a list" in text_of(d, "#panel-block ul.problems")
    assert api("GET", f"/api/workflows/{wf_id}")[1]["blocks"] == []   # nothing was saved
    shots(d, "validation")

    # fix it and save
    set_config(d, "check", {"conditions": [{"id": "yes", "expression": "variables.n > 1"}]})
    save(d)
    wait(d, lambda d: text_of(d, ".toolbar [role=status]") == "Saved")
    assert text_of(d, ".problems-box") == "" and not all_css(d, "g.node.problem")
    saved = api("GET", f"/api/workflows/{wf_id}")[1]
    assert [b["id"] for b in saved["blocks"]] == ["start", "check", "out"]
    assert {(e["source"], e["target"], e.get("source_handle")) for e in saved["edges"]} == {
        ("start", "check", None), ("check", "out", "yes")}

    # add a block and an edge, save; remove the edge, then the block, save: the API has each state
    add_block(d, "code", "extra")
    connect(d, "check", "extra", handle="else")
    save(d)
    wait(d, lambda d: text_of(d, ".toolbar [role=status]") == "Saved")
    saved = api("GET", f"/api/workflows/{wf_id}")[1]
    assert [b["id"] for b in saved["blocks"]] == ["start", "check", "out", "extra"]
    assert ("check", "extra", "else") in {(e["source"], e["target"], e.get("source_handle")) for e in saved["edges"]}
    select_block(d, "extra")
    css(d, '#panel-block button[aria-label="Remove edge check → extra [else]"]').click()
    wait(d, lambda d: not all_css(d, 'g.edge[data-target="extra"]'))
    save(d)
    wait(d, lambda d: text_of(d, ".toolbar [role=status]") == "Saved")
    assert len(api("GET", f"/api/workflows/{wf_id}")[1]["edges"]) == 2
    select_block(d, "extra")
    button(css(d, "#panel-block"), "Remove block").click()
    wait(d, lambda d: not all_css(d, 'g.node[data-id="extra"]'))
    save(d)
    wait(d, lambda d: text_of(d, ".toolbar [role=status]") == "Saved")
    saved = api("GET", f"/api/workflows/{wf_id}")[1]
    assert [b["id"] for b in saved["blocks"]] == ["start", "check", "out"] and len(saved["edges"]) == 2

    # move a block by dragging it; the new position is saved
    before = next(b for b in saved["blocks"] if b["id"] == "out")["position"]
    ActionChains(d).drag_and_drop_by_offset(node(d, "out"), 0, 120).perform()
    wait(d, lambda d: "Unsaved" in text_of(d, ".toolbar [role=status]"))
    save(d)
    wait(d, lambda d: text_of(d, ".toolbar [role=status]") == "Saved")
    after = next(b for b in api("GET", f"/api/workflows/{wf_id}")[1]["blocks"] if b["id"] == "out")["position"]
    assert after["x"] == before["x"] and after["y"] > before["y"] + 60

    # run it: every block completes, the output shows as text
    css(d, "#tab-run").click()
    set_value(d, by_label(d, "Variables (JSON)"), '{"n": 5}')
    button(d, "Run workflow").click()
    wait(d, lambda d: all(node_status(d, b) == "completed" for b in ("start", "check", "out")))
    wait(d, lambda d: "Completed in" in text_of(d, ".run-summary"))
    out = css(d, ".run-summary pre.final-output").text
    assert XSS in out and '"n": 5' in out
    assert not d.find_elements(By.CSS_SELECTOR, "main img") and no_alert(d)
    shots(d, "run")
    select_block(d, "out")
    assert XSS in text_of(d, "#panel-block .block-run pre.output")

    # history: the run is there; open it and read a block's output
    d.find_element(By.LINK_TEXT, "History").click()
    wait(d, lambda d: all_css(d, "table.runs tbody tr"))
    assert all_css(d, "table.runs tbody tr")[0].get_attribute("data-status") == "completed"
    select(by_label(d, "Status"), "failed")
    wait(d, lambda d: "No failed runs" in text_of(d, ".list"))
    select(by_label(d, "Status"), "completed")
    wait(d, lambda d: all_css(d, "table.runs tbody tr"))
    assert unlabeled(d) == []
    shots(d, "history")
    css(d, "table.runs tbody tr a").click()
    wait(d, lambda d: node_status(d, "out") == "completed")
    assert node_status(d, "start") == node_status(d, "check") == "completed"
    button(d, "check").click()
    wait(d, lambda d: '"branch": "yes"' in text_of(d, ".block-detail pre.output"))
    button(d, "out").click()
    wait(d, lambda d: XSS in text_of(d, ".block-detail pre.output"))
    assert "Attempts" in text_of(d, ".block-detail dl") and "Input" in text_of(d, ".block-detail")
    shots(d, "run-detail")
    assert no_alert(d) and not d.find_elements(By.CSS_SELECTOR, "main img")

    # deploy: add a webhook block, save, deploy, arm, copy the URL
    d.get(f"{server.url}/#/wf/{wf_id}")
    wait(d, lambda d: node(d, "out"))
    add_block(d, "webhook", "hook")
    connect(d, "hook", "out")
    save(d)
    wait(d, lambda d: text_of(d, ".toolbar [role=status]") == "Saved")
    css(d, "#tab-deploy").click()
    panel = css(d, "#panel-deploy")
    button(panel, "Deploy").click()
    wait(d, lambda d: "Deployed since" in text_of(d, "#panel-deploy .status-line"))
    button(panel, "Arm webhook").click()
    wait(d, lambda d: re.search(r"Armed: (9|10):\d\d left", text_of(d, "#panel-deploy .countdown")))
    first = text_of(d, "#panel-deploy .countdown")
    wait(d, lambda d: text_of(d, "#panel-deploy .countdown") != first, message="the countdown moves")
    hook = next(b for b in api("GET", f"/api/workflows/{wf_id}")[1]["blocks"] if b["type"] == "webhook")
    url_field = by_label(panel, "Webhook URL")
    assert url_field.get_attribute("value") == hook["webhook_url"]
    d.execute_cdp_cmd("Browser.grantPermissions", {"origin": server.url,
                                                   "permissions": ["clipboardReadWrite", "clipboardSanitizedWrite"]})
    button(panel, "Copy URL").click()
    wait(d, lambda d: "URL copied" in text_of(d, "#panel-deploy [role=status]"))
    assert d.execute_async_script("navigator.clipboard.readText().then(arguments[0])") == hook["webhook_url"]
    assert "deployed" in text_of(d, ".row.head .badges") and "armed" in text_of(d, ".row.head .badges")
    assert unlabeled(d) == []
    shots(d, "deploy")

    # the list shows the badges; the name is text
    d.find_element(By.LINK_TEXT, "Workflows").click()
    wait(d, lambda d: all_css(d, "table tbody tr"))
    row = css(d, f'tr[data-id="{wf_id}"]')
    assert row.find_element(By.CSS_SELECTOR, "a.name").text == f"Greeter {XSS}"
    assert "deployed" in row.text and "armed" in row.text
    shots(d, "workflows")

    # the armed call comes: the deploy panel notices the arm is used up; history has the run
    row.find_element(By.CSS_SELECTOR, "a.name").click()
    wait(d, lambda d: node(d, "hook"))
    css(d, "#tab-deploy").click()
    wait(d, lambda d: "Armed:" in text_of(d, "#panel-deploy .countdown"))
    answer = requests.post(hook["webhook_url"], json={"n": 7}, timeout=30,
                           headers={"X-Webhook-Secret": hook["config"]["webhook_secret"]})
    assert answer.status_code == 202, answer.text
    wait(d, lambda d: text_of(d, "#panel-deploy .countdown") == "Not armed")
    assert "armed" not in text_of(d, ".row.head .badges")
    d.find_element(By.LINK_TEXT, "History").click()
    wait(d, lambda d: [td.text for td in all_css(d, "table.runs tbody tr td:nth-child(3)")][:1] == ["webhook"])
    assert unlabeled(d) == []

    # undeploy: the API says so, the badge goes
    d.find_element(By.LINK_TEXT, "Graph").click()
    wait(d, lambda d: node(d, "hook"))
    css(d, "#tab-deploy").click()
    button(css(d, "#panel-deploy"), "Undeploy").click()
    wait(d, lambda d: text_of(d, "#panel-deploy .status-line") == "Not deployed")
    assert api("GET", f"/api/workflows/{wf_id}")[1]["deployed"] is False
    assert "deployed" not in text_of(d, ".row.head .badges")
    assert not button(css(d, "#panel-deploy"), "Arm webhook").is_enabled()

    assert no_alert(d) and not d.find_elements(By.CSS_SELECTOR, "main img")
    assert severe_logs(d) == []
    # everything the page loaded came from the server itself (nothing from the internet)
    loaded = d.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
    assert loaded and all(u.startswith(server.url + "/") for u in loaded), loaded
