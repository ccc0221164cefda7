"""The request body forms of the vendor page's client samples, made into one JSON object.

- curl, Java and JavaScript send the object itself.
- Python's sample passes ``json=json.dumps(d)``: the body is a JSON *string* holding the
  object's JSON text.
- PHP and C# send ``user`` and ``payload`` as strings holding a dict literal with single
  quotes: ``"{'tenant_id': 'b11d...', 'user_extension': '210'}"``.

Everything is parsed strictly: JSON by ``json``, and the single-quoted form by a small
tokenizer that accepts only string keys and string/number/boolean/null values. Nothing is
ever evaluated.
"""

from __future__ import annotations

import json
import re
from typing import Any


class BodyError(Exception):
    """The body is not one of the accepted forms; the message says what is wrong."""

    code = "malformed-body"


def normalise_body(raw: bytes) -> dict[str, Any]:
    try:
        value = json.loads(raw) if raw.strip() else None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BodyError(f"the body is not JSON: {exc}") from exc
    if isinstance(value, str):  # the Python sample: a JSON string holding the JSON object
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            raise BodyError("the body is a JSON string that does not hold a JSON object") from exc
    if not isinstance(value, dict):
        raise BodyError("the body must be a JSON object with command, user and payload")
    for key in ("user", "payload"):
        if isinstance(value.get(key), str):
            value[key] = parse_dict_string(value[key], key)
    return value


_TOKEN = re.compile(
    r"""\s*(?:
        (?P<punct>[{}:,])
      | '(?P<single>(?:[^'\\]|\\.)*)'
      | "(?P<double>(?:[^"\\]|\\.)*)"
      | (?P<number>-?\d+(?:\.\d+)?)
      | (?P<word>true|false|null|True|False|None)
    )""",
    re.VERBOSE,
)
_WORDS = {"true": True, "True": True, "false": False, "False": False, "null": None, "None": None}


def parse_dict_string(text: str, field: str) -> dict[str, Any]:
    """A flat dict literal (single or double quotes) -> dict; anything else is refused."""
    stripped = text.strip()
    if stripped.startswith("{"):
        try:
            value = json.loads(stripped)
            if isinstance(value, dict):
                return value
        except json.JSONDecodeError:
            pass
    tokens: list[tuple[str, Any]] = []
    position = 0
    while position < len(stripped):
        match = _TOKEN.match(stripped, position)
        if match is None or match.end() == position:
            raise BodyError(f"{field}: cannot read {stripped[position:position + 20]!r}")
        position = match.end()
        if match.group("punct"):
            tokens.append(("punct", match.group("punct")))
        elif match.group("single") is not None:
            tokens.append(("str", _unescape(match.group("single"))))
        elif match.group("double") is not None:
            tokens.append(("str", _unescape(match.group("double"))))
        elif match.group("number") is not None:
            number = match.group("number")
            tokens.append(("value", float(number) if "." in number else int(number)))
        else:
            tokens.append(("value", _WORDS[match.group("word")]))
    return _dict_from_tokens(tokens, field)


def _unescape(text: str) -> str:
    return re.sub(r"\\(.)", r"\1", text)


def _dict_from_tokens(tokens: list[tuple[str, Any]], field: str) -> dict[str, Any]:
    error = BodyError(f"{field} must be an object such as {{'key': 'value'}}")
    if len(tokens) < 2 or tokens[0] != ("punct", "{") or tokens[-1] != ("punct", "}"):
        raise error
    body = tokens[1:-1]
    result: dict[str, Any] = {}
    index = 0
    while index < len(body):
        try:
            (key_kind, key), colon, (value_kind, value) = body[index:index + 3]
        except ValueError:
            raise error from None
        if key_kind != "str" or colon != ("punct", ":") or value_kind == "punct":
            raise error
        result[key] = value
        index += 3
        if index < len(body):
            if body[index] != ("punct", ",") or index + 1 == len(body):
                raise error
            index += 1
    return result
