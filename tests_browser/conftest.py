"""Browser tests: a real server process and headless Chromium driven by Selenium.

Run with `python3 -m pytest tests_browser` (not part of the README's test command:
they need the `chromium` and `chromium-driver` packages and `selenium`).
ACTORFLOW_SCREENSHOTS=docs/console writes the screenshots the tests take there.
"""

import base64
import os
import shutil

import pytest

from tests.processes import ServerProcess

KEY = "af_browser_test_key_0000000000001"


def _missing():
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed"
    if not shutil.which("chromedriver") or not (shutil.which("chromium") or shutil.which("chromium-browser")):
        return "chromium and chromium-driver are not installed"
    return None


def pytest_collection_modifyitems(config, items):
    why = _missing()
    if why:
        for item in items:
            item.add_marker(pytest.mark.skip(reason=why))


@pytest.fixture
def server_env():
    """Extra environment for the server; a test module may override it."""
    return {}


@pytest.fixture
def server(tmp_path, server_env):
    proc = ServerProcess(f"sqlite:///{tmp_path / 'console.db'}",
                         env={"ACTORFLOW_API_KEY": KEY, **server_env})
    yield proc
    proc.kill()


def make_driver(tmp_path, width, height):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or shutil.which("chromium-browser")
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", f"--user-data-dir={tmp_path}", f"--window-size={width},{height}",
                 "--hide-scrollbars"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(shutil.which("chromedriver")))
    driver.set_window_size(width, height)
    return driver


@pytest.fixture
def browser(tmp_path_factory):
    """A function making drivers (fresh profile each), all quit at the end."""
    drivers = []

    def make(width=1280, height=900):
        d = make_driver(tmp_path_factory.mktemp("chromium-profile"), width, height)
        drivers.append(d)
        return d
    yield make
    for d in drivers:
        d.quit()


@pytest.fixture
def shots(tmp_path):
    """save(driver, name): a PNG of the page, copied to $ACTORFLOW_SCREENSHOTS when set."""
    target = os.environ.get("ACTORFLOW_SCREENSHOTS")

    def save(driver, name):
        path = tmp_path / f"{name}.png"
        # the whole page, not just the window (at most 2400 px tall)
        size = driver.execute_cdp_cmd("Page.getLayoutMetrics", {})["cssContentSize"]
        shot = driver.execute_cdp_cmd("Page.captureScreenshot", {
            "format": "png", "captureBeyondViewport": True,
            "clip": {"x": 0, "y": 0, "width": size["width"], "height": min(size["height"], 2400), "scale": 1}})
        path.write_bytes(base64.b64decode(shot["data"]))
        if target:
            os.makedirs(target, exist_ok=True)
            shutil.copy(path, os.path.join(target, f"{name}.png"))
        return path
    return save
