"""Template rendering as pure functions."""

import pytest

from actors.templates import Scope, render
from actors.errors import BlockError

OUTPUTS = {"start": {"n": 5, "name": "Ada"}, "fetch": {"body": {"items": [{"id": "x1"}, {"id": "x2"}]}},
           "dotted.id": {"v": True}, "gone": None}


def scope(block_id="me", upstream=("start", "fetch", "dotted.id", "gone"), skipped=("gone",)):
    known = set(OUTPUTS) | {"me", "sibling"}
    return Scope(block_id, {"mode": "x", "list": [1, 2]}, OUTPUTS, known,
                 lambda b: b in upstream, frozenset(skipped))


def test_whole_reference_keeps_json_type():
    s = scope()
    assert render("{{ start.n }}", s) == 5
    assert render("{{start}}", s) == {"n": 5, "name": "Ada"}
    assert render("{{ variables.list }}", s) == [1, 2]
    assert render("{{ fetch.body.items.0.id }}", s) == "x1"
    assert render("{{ fetch.body.items.-1.id }}", s) == "x2"
    assert render("{{ dotted.id.v }}", s) is True


def test_reference_inside_text_is_rendered_as_text():
    s = scope()
    assert render("n={{ start.n }} name={{start.name}}", s) == "n=5 name=Ada"
    assert render("obj {{ start }}", s) == 'obj {"n":5,"name":"Ada"}'
    assert render("flag {{ dotted.id.v }} none {{ gone }}", s) == "flag true none null"


def test_nested_structures_are_rendered_and_new():
    s = scope()
    config = {"a": ["{{ start.n }}", {"b": "x{{ variables.mode }}"}], "n": 1, "t": None}
    out = render(config, s)
    assert out == {"a": [5, {"b": "xx"}], "n": 1, "t": None}
    assert config["a"][0] == "{{ start.n }}"
    assert render({"tools": "{{ args.x }}"}, s, skip_keys={"tools"}) == {"tools": "{{ args.x }}"}


def test_skipped_upstream_block_is_null():
    assert render("{{ gone.anything }}", scope()) is None


@pytest.mark.parametrize("template, fragment", [
    ("{{ nope.x }}", "nope"),
    ("{{ sibling }}", "not upstream"),
    ("{{ start.missing }}", "start.missing"),
    ("{{ fetch.body.items.9 }}", "fetch.body.items.9"),
    ("{{ start.n.deeper }}", "start.n.deeper"),
    ("{{ variables.nothing }}", "variables.nothing"),
    ("{{ }}", "empty"),
])
def test_bad_references_name_the_reference(template, fragment):
    with pytest.raises(BlockError) as err:
        render(template, scope())
    assert fragment in err.value.message
