"""The /execute body: the usual one skips the schema, and must load exactly as the schema would."""

import pytest

from models.errors import ValidationError
from schemas import load
from schemas.execution import ExecuteBody, execute_request

MAX = 300


def by_the_schema(body):
    data = load(ExecuteBody(), body)
    return data.get("variables", data.get("input", {})), min(data.get("timeout", MAX), MAX)


@pytest.mark.parametrize("body", [
    {},
    {"variables": {}},
    {"variables": {"n": 9, "nested": {"a": [1, 2]}}},
    {"input": {"x": "y"}},
    {"variables": {"a": 1}, "input": {"b": 2}},     # both: variables win
    {"variables": {"a": 1}, "timeout": 5},           # these go through the schema
    {"variables": {"a": 1}, "timeout": 900},
    {"variables": {"a": 1}, "unknown": [1]},
])
def test_a_valid_body_loads_as_the_schema_loads_it(body):
    variables, timeout = execute_request(body, MAX)
    assert (variables, timeout) == by_the_schema(body)
    if "variables" in body:
        assert variables is not body["variables"]   # a copy, as the schema makes


@pytest.mark.parametrize("body", [
    {"variables": None},
    {"variables": [1]},
    {"input": "text"},
    {"variables": {}, "timeout": 0},
    {"variables": {}, "timeout": "5"},
    [{"variables": {}}],
])
def test_an_invalid_body_is_refused_as_the_schema_refuses_it(body):
    with pytest.raises(ValidationError) as ours:
        execute_request(body, MAX)
    with pytest.raises(ValidationError) as schemas:
        by_the_schema(body)
    assert (ours.value.message, ours.value.extra) == (schemas.value.message, schemas.value.extra)


def test_no_body_runs_with_no_variables():
    assert execute_request(None, MAX) == ({}, MAX)


@pytest.mark.parametrize("raw", [b'{"variables": {"n": 1, "x": [1.5, -2]}}', b"\xef\xbb\xbf{}", b"[1,2", b"{\"a\": NaN}",
                                 b"{\"a\": 1e999}"])
def test_a_body_parses_as_json_loads_with_our_checks_would(raw):
    # The decoder is built once and shared; what it accepts and how it refuses stay json.loads's.
    import json
    from schemas import jsonbody
    try:
        expected = json.loads(raw.decode(), parse_constant=jsonbody._constant, parse_float=jsonbody._float,
                              parse_int=jsonbody._int)
    except jsonbody._OutOfRange as exc:
        expected = ValidationError(f"request body: {exc}")
    except ValueError as exc:
        expected = ValidationError(f"request body is not valid JSON: {exc}")
    try:
        got = jsonbody.parse(raw)
    except ValidationError as exc:
        assert isinstance(expected, ValidationError) and exc.message == expected.message
    else:
        assert got == expected
