"""The workflows list: pages, search, rename, delete with confirmation."""

import re
import subprocess
import sys

from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

from tests.processes import ROOT
from tests_browser.page import Api, all_css, button, by_label, css, fill, sign_in, text_of, wait


def test_pages_search_rename_delete(server, browser, shots):
    api = Api(server.url)
    for i in range(22):
        api("POST", "/api/workflows", {"name": f"{'alpha' if i % 2 else 'beta'} {i:02d}"})
    d = browser()
    sign_in(d, server.url)
    wait(d, lambda d: text_of(d, ".pager span") == "1–20 of 22")
    assert len(all_css(d, "table tbody tr")) == 20
    assert all_css(d, "table tbody tr a.name")[0].text == "alpha 21"   # newest first
    button(d, "Next →").click()
    wait(d, lambda d: text_of(d, ".pager span") == "21–22 of 22")
    assert [a.text for a in all_css(d, "table tbody tr a.name")] == ["alpha 01", "beta 00"]

    # search: by name, across pages
    fill(by_label(d, "Search"), "beta")
    wait(d, lambda d: text_of(d, ".pager span") == "1–11 of 11")
    assert all(a.text.startswith("beta") for a in all_css(d, "table tbody tr a.name"))
    fill(by_label(d, "Search"), "beta 04")
    wait(d, lambda d: text_of(d, ".pager span") == "1–1 of 1")

    # rename through the dialog, with the keyboard
    button(d, "Rename").click()
    dialog = wait(d, lambda d: css(d, "dialog[open]"))
    fill(by_label(dialog, "Name"), "gamma renamed")
    by_label(dialog, "Name").send_keys(Keys.ENTER)
    fill(by_label(d, "Search"), "gamma")
    wait(d, lambda d: [a.text for a in all_css(d, "table tbody tr a.name")] == ["gamma renamed"])
    wf_id = css(d, "table tbody tr").get_attribute("data-id")
    assert api("GET", f"/api/workflows/{wf_id}")[1]["name"] == "gamma renamed"

    # delete asks first: Cancel keeps it, Delete removes it
    button(d, "Delete").click()
    dialog = wait(d, lambda d: css(d, "dialog[open]"))
    assert "gamma renamed" in dialog.text
    shots(d, "delete-confirm")
    button(dialog, "Cancel").click()
    wait(d, lambda d: not all_css(d, "dialog"))
    assert api("GET", f"/api/workflows/{wf_id}")[0] == 200
    button(d, "Delete").click()
    button(wait(d, lambda d: css(d, "dialog[open]")), "Delete").click()
    wait(d, lambda d: "No workflow matches" in text_of(d, ".list"))
    assert api("GET", f"/api/workflows/{wf_id}")[0] == 404

    # sign out forgets the key
    d.find_element(By.ID, "signout").click()
    wait(d, lambda d: by_label(d, "API key"))
    assert d.execute_script("return sessionStorage.getItem('actorflow.key')") is None
    assert not css(d, "#signout").is_displayed()


def cli(tmp_path, *args):
    out = subprocess.run([sys.executable, "run.py", *args, "--database-url", f"sqlite:///{tmp_path / 'console.db'}"],
                         cwd=ROOT, capture_output=True, text=True, timeout=120, check=True).stdout
    return out.strip().splitlines()


def test_a_key_revoked_while_signed_in_brings_back_the_sign_in(server, browser, tmp_path):
    lines = cli(tmp_path, "create-key", "--name", "console")
    key_id, key = re.match(r"created key (\S+) ", lines[0]).group(1), lines[-1]
    d = browser()
    sign_in(d, server.url, key=key)
    wait(d, lambda d: text_of(d, "main h1") == "Workflows")
    cli(tmp_path, "revoke-key", key_id)
    # the server may answer from its short-lived key cache for a moment
    wait(d, lambda d: Api(server.url, key)("GET", "/api/workflows")[0] == 401)
    fill(by_label(d, "New workflow name"), "after revoke")
    button(d, "Create").click()
    message = wait(d, lambda d: text_of(d, ".signin .error"))
    assert "401" in message and "Paste a valid API key" in message
    assert d.execute_script("return sessionStorage.getItem('actorflow.key')") is None
    assert not css(d, "#signout").is_displayed()
    assert Api(server.url)("GET", "/api/workflows")[1]["total"] == 0   # nothing was created
