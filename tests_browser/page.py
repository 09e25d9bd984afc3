"""Driving the console like a person: fields found by their labels, waits on conditions."""

import json

import requests
from selenium.common.exceptions import NoAlertPresentException, StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import Select, WebDriverWait

from tests_browser.conftest import KEY

TIMEOUT = 30


def wait(driver, predicate, timeout=TIMEOUT, message=""):
    """Poll until predicate(driver) is truthy; its value is returned."""
    def check(d):
        try:
            return predicate(d)
        except StaleElementReferenceException:
            return False
    return WebDriverWait(driver, timeout, poll_frequency=0.05).until(check, message)


def css(driver, selector):
    return driver.find_element(By.CSS_SELECTOR, selector)


def all_css(driver, selector):
    return driver.find_elements(By.CSS_SELECTOR, selector)


def by_label(scope, text):
    """The control a <label> with this text is for."""
    label = scope.find_element(By.XPATH, f".//label[normalize-space()='{text}']")
    return scope.find_element(By.ID, label.get_attribute("for"))


def button(scope, text):
    return scope.find_element(By.XPATH, f".//button[normalize-space()='{text}']")


def fill(element, text):
    element.send_keys(Keys.CONTROL, "a")
    element.send_keys(Keys.DELETE)
    element.send_keys(text)


def set_value(driver, element, text):
    """For textareas with JSON: typing braces and newlines key by key is slow and auto-indents nothing,
    but send_keys is what a person does; long JSON is set directly and an input event sent."""
    driver.execute_script("arguments[0].value = arguments[1];"
                          "arguments[0].dispatchEvent(new Event('input', {bubbles: true}));", element, text)


def select(element, value):
    Select(element).select_by_value(value)


def text_of(driver, selector):
    els = all_css(driver, selector)
    return els[0].text if els else ""


def sign_in(driver, url, key=KEY):
    driver.get(url + "/")
    field = wait(driver, lambda d: by_label(d, "API key"))
    fill(field, key)
    button(driver, "Sign in").click()


def node(driver, block_id):
    return css(driver, f'svg.graph g.node[data-id="{block_id}"]')


def node_status(driver, block_id):
    els = all_css(driver, f'svg.graph g.node[data-id="{block_id}"]')
    return els[0].get_attribute("data-status") if els else None


def select_block(driver, block_id):
    # keyboard, as a person without a mouse would: focus the block, press Enter
    node(driver, block_id).send_keys(Keys.ENTER)
    wait(driver, lambda d: css(d, "#panel-block h2 .mono").text == block_id)


def no_alert(driver):
    try:
        driver.switch_to.alert
    except NoAlertPresentException:
        return True
    return False


def unlabeled(driver):
    """Inputs, selects and textareas on the page with no <label> (hidden tab panels included)."""
    return driver.execute_script("""return [...document.querySelectorAll('input, select, textarea')]
        .filter(e => !e.labels || !e.labels.length).map(e => e.outerHTML)""")


def severe_logs(driver):
    """Script errors and CSP violations; answers like the 400s and 401s the tests provoke are not counted."""
    return [e for e in driver.get_log("browser") if e["level"] == "SEVERE" and e["source"] != "network"]


class Api:
    """The HTTP API, to check what the console stored."""

    def __init__(self, url, key=KEY):
        self.url = url
        self.headers = {"Authorization": f"Bearer {key}"}

    def __call__(self, method, path, body=None, **kw):
        r = requests.request(method, self.url + path, headers=self.headers,
                             data=None if body is None else json.dumps(body), timeout=60, **kw)
        return r.status_code, (r.json() if r.content else None)
