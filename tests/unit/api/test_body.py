"""The body forms of the vendor page's client samples, made into one JSON object."""

from __future__ import annotations

import json

import pytest

from hookswitch.api.body import BodyError, normalise_body, parse_dict_string

REQUEST = {"command": "click-to-dial",
           "user": {"tenant_id": "b11d749b-8eb7-4236-a068-3d94ba3860d6",
                    "user_extension": "210"},
           "payload": {"destination": "200"}}


def test_the_object_itself_as_curl_java_and_javascript_send_it() -> None:
    assert normalise_body(json.dumps(REQUEST).encode()) == REQUEST


def test_a_json_string_holding_the_object_as_the_python_sample_sends_it() -> None:
    # requests.post(url, json=json.dumps(d)): the body is a JSON string of the JSON text
    assert normalise_body(json.dumps(json.dumps(REQUEST)).encode()) == REQUEST


def test_single_quoted_dict_strings_as_the_php_and_csharp_samples_send_them() -> None:
    body = {"command": "click-to-dial",
            "user": "{'tenant_id': 'b11d749b-8eb7-4236-a068-3d94ba3860d6', "
                    "'user_extension': '210'}",
            "payload": "{'destination': '200'}"}
    assert normalise_body(json.dumps(body).encode()) == REQUEST


@pytest.mark.parametrize(("text", "expected"), [
    ("{'a': 'b', 'n': 12, 'f': 1.5, 't': True, 'x': None}",
     {"a": "b", "n": 12, "f": 1.5, "t": True, "x": None}),
    ('{"a": "b"}', {"a": "b"}),
    ("{'it\\'s': 'q'}", {"it's": "q"}),
    ("{}", {}),
])
def test_what_a_dict_string_may_hold(text: str, expected: dict) -> None:
    assert parse_dict_string(text, "user") == expected


@pytest.mark.parametrize("text", [
    "{'a': __import__('os')}", "{'a': ['list']}", "{'a' 'b'}", "{'a': 'b',}", "['a']",
    "{'a': {'nested': 1}}", "'just a string'",
])
def test_anything_else_is_refused_and_nothing_is_evaluated(text: str) -> None:
    with pytest.raises(BodyError):
        parse_dict_string(text, "user")


@pytest.mark.parametrize("raw", [b"", b"   ", b"not json", b"[1, 2]", b'"a string"', b"42"])
def test_bodies_that_are_no_object_are_refused(raw: bytes) -> None:
    with pytest.raises(BodyError):
        normalise_body(raw)
