"""The console at phone width (390 px) and by keyboard alone; screenshots of both widths."""

from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.keys import Keys

from tests.helpers import START, edge
from tests_browser.page import Api, all_css, css, node_status, severe_logs, sign_in, text_of, unlabeled, wait

BLOCKS = [START,
          {"id": "check", "type": "condition",
           "config": {"conditions": [{"id": "big", "expression": "variables.n > 10"}]}},
          {"id": "small", "type": "code", "config": {"code": "print('small', variables['n'])\nreturn variables['n']"}},
          {"id": "large", "type": "response", "config": {"data": "big"}},
          {"id": "out", "type": "response", "config": {"data": "{{ small }}"}}]
EDGES = [edge("start", "check"), edge("check", "large", "big"), edge("check", "small", "else"),
         edge("small", "out")]


def no_sideways_scroll(d):
    return d.execute_script("return document.documentElement.scrollWidth <= window.innerWidth")


def test_phone_width(server, browser, shots):
    api = Api(server.url)
    _, wf = api("POST", "/api/workflows", {"name": "Sort numbers"})
    api("PUT", f"/api/workflows/{wf['id']}/graph", {"blocks": BLOCKS, "edges": EDGES})   # no positions
    api("POST", f"/api/workflows/{wf['id']}/deploy")
    status, done = api("POST", f"/api/workflows/{wf['id']}/execute", {"variables": {"n": 3}})
    assert status == 200, done
    d = browser(390, 844)
    sign_in(d, server.url)
    wait(d, lambda d: all_css(d, "table tbody tr"))
    assert no_sideways_scroll(d)
    shots(d, "phone-workflows")

    d.get(f"{server.url}/#/wf/{wf['id']}")
    wait(d, lambda d: len(all_css(d, "svg.graph g.node")) == 5)
    # saved without positions: laid out in columns by depth, none on top of another
    xs = {b: float(css(d, f'g.node[data-id="{b}"]').get_attribute("transform").split("(")[1].split(",")[0])
          for b in ("start", "check", "small", "large", "out")}
    assert xs["start"] < xs["check"] < xs["small"] < xs["out"] and xs["small"] == xs["large"]
    assert {e.text for e in all_css(d, "text.handle")} == {"big", "else"}
    # coloured by type: one colour per type, the same for blocks of one type
    stripe = {b: d.execute_script("return getComputedStyle(arguments[0]).fill",
                                  css(d, f'g.node[data-id="{b}"] rect.stripe')) for b in xs}
    assert len({stripe["start"], stripe["check"], stripe["small"], stripe["out"]}) == 4
    assert stripe["large"] == stripe["out"]
    assert no_sideways_scroll(d)
    shots(d, "phone-graph")

    d.get(f"{server.url}/#/wf/{wf['id']}/runs/{done['execution_id']}")
    wait(d, lambda d: node_status(d, "out") == "completed")
    assert node_status(d, "large") == "skipped" and node_status(d, "small") == "completed"
    css(d, '.block-list li[data-block="small"] button').click()
    wait(d, lambda d: "small 3" in text_of(d, ".block-detail pre.stdout"))
    assert no_sideways_scroll(d)
    shots(d, "phone-run")
    assert severe_logs(d) == []


def test_keyboard_reaches_the_controls(server, browser):
    api = Api(server.url)
    _, wf = api("POST", "/api/workflows", {"name": "Keys"})
    api("PUT", f"/api/workflows/{wf['id']}/graph", {"blocks": BLOCKS, "edges": EDGES})
    d = browser()
    sign_in(d, server.url)
    wait(d, lambda d: all_css(d, "table tbody tr"))
    d.get(f"{server.url}/#/wf/{wf['id']}")
    wait(d, lambda d: len(all_css(d, "svg.graph g.node")) == 5)
    css(d, "body").click()
    seen = []
    for _ in range(40):
        ActionChains(d).send_keys(Keys.TAB).perform()
        el = d.switch_to.active_element
        seen.append(el.get_attribute("data-id") or el.get_attribute("aria-label") or el.text
                    or el.get_attribute("id"))
    for want in ("Add block", "Save", "Auto layout", "start", "check", "small", "large", "out", "Block"):
        assert want in seen, (want, seen)
    # every input, select and textarea has a label
    assert unlabeled(d) == []
    # a block is selected and moved with the keys alone
    target = css(d, 'g.node[data-id="out"]')
    before = target.get_attribute("transform")
    target.send_keys(Keys.ENTER)
    wait(d, lambda d: text_of(d, "#panel-block h2 .mono") == "out")
    d.switch_to.active_element.send_keys(Keys.ARROW_DOWN)
    wait(d, lambda d: css(d, 'g.node[data-id="out"]').get_attribute("transform") != before)
    assert "Unsaved" in text_of(d, ".toolbar [role=status]")
