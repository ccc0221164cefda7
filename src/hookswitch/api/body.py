"""The request body forms of the vendor page's client samples, made into one JSON object.

- curl, Java and JavaScript send the object itself.
- Python's sample passes ``json=json.dumps(d)``: the body is a JSON *string* holding the
  object's JSON text.
- PHP and C# send ``user`` and ``payload`` as strings holding a dict literal with single
  quotes: ``"{'tenant_id': 'b11d...', 'user_extension': '210'}"``.

Everything is parsed strictly and boundedly, and nothing is ever evaluated:
- JSON by orjson: it refuses what is not JSON (NaN, lone surrogates, bad UTF-8), refuses
  nesting deeper than 1024 with an error instead of recursing (the standard library's
  parser raised RecursionError at ~1000), and reads numbers as machine integers or doubles,
  so a 5,000-digit number is an error rather than ``int()``'s 4300-digit ValueError. It
  also reads a 64 KiB body in about 0.1 ms, so parsing never holds the event loop.
- A call-control body needs three levels (body, ``user``, a field); anything nested deeper
  than ``MAX_DEPTH`` is refused after parsing, by a walk that does not recurse.
- The single-quoted form by a small tokenizer: at most ``MAX_DICT_STRING`` characters, one
  regular-expression scan over them (linear), one flat level of string keys and
  string/number/boolean/null values, numbers of at most ``MAX_DIGITS`` digits.
"""

from __future__ import annotations

import re
from typing import Any

import orjson

from hookswitch.api.errors import MalformedBody

MAX_DEPTH = 8
MAX_DICT_STRING = 4096  # characters of a string ``user``/``payload``; real ones are < 200
MAX_DIGITS = 18  # so every accepted number fits a 64-bit integer


class BodyError(MalformedBody):
    """The body is not one of the accepted forms; the message says what is wrong."""


class _NotJson(BodyError):
    """Not JSON at all (as opposed to JSON refused for its depth)."""


def normalise_body(raw: bytes) -> dict[str, Any]:
    if not raw.strip():
        raise BodyError("the body is empty; send a JSON object with command, user and payload")
    value = _json(raw, "the body")
    if isinstance(value, str):  # the Python sample: a JSON string holding the JSON object
        value = _json(value, "the body (a JSON string)")
    if not isinstance(value, dict):
        raise BodyError("the body must be a JSON object with command, user and payload")
    for key in ("user", "payload"):
        if isinstance(value.get(key), str):
            value[key] = parse_dict_string(value[key], key)
    return value


def _json(text: bytes | str, what: str) -> Any:
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        if exc.msg.startswith("depth limit"):  # orjson's own bound, at 1024 levels
            raise _too_deep(what) from None
        raise _NotJson(
            f"{what} is not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})"
        ) from None
    _ensure_shallow(value, what)
    return value


def _too_deep(what: str) -> BodyError:
    return BodyError(f"{what} nests objects or arrays more than {MAX_DEPTH} levels deep; "
                     "a call-control body has command, user and payload, each one level deep")


_CONTAINERS = (dict, list)


def _ensure_shallow(value: Any, what: str) -> None:
    """Refuse nesting deeper than MAX_DEPTH, level by level rather than by recursion: each
    container is looked at once, so a body of 64 KiB costs at most a millisecond or two."""
    level: list[Any] = [value] if type(value) in _CONTAINERS else []
    for _ in range(MAX_DEPTH):
        below: list[Any] = []
        for container in level:
            children = container.values() if isinstance(container, dict) else container
            # type(), not isinstance(): orjson makes exact dicts and lists, and this is
            # the one loop here that runs once per value (30,000 in a 64 KiB array).
            below.extend(child for child in children if type(child) in _CONTAINERS)
        if not below:
            return
        level = below
    raise _too_deep(what)


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
_EXAMPLE = "{'key': 'value'}"


def parse_dict_string(text: str, field: str) -> dict[str, Any]:
    """A flat dict literal (single or double quotes) -> dict; anything else is refused."""
    if len(text) > MAX_DICT_STRING:
        raise BodyError(f"{field} is a string of {len(text)} characters; as a string it may "
                        f"have at most {MAX_DICT_STRING}, or send {field} as a JSON object")
    stripped = text.strip()
    if stripped.startswith("{"):
        try:
            value = _json(stripped, field)
        except _NotJson:
            pass  # then it is read as a single-quoted dict, below
        else:
            if isinstance(value, dict):
                return value
    tokens: list[tuple[str, Any]] = []
    position = 0
    while position < len(stripped):
        match = _TOKEN.match(stripped, position)
        if match is None or match.end() == position:
            raise BodyError(f"{field}: cannot read {stripped[position:position + 20]!r} at "
                            f"character {position}; expected a dict such as {_EXAMPLE}")
        position = match.end()
        kind = match.lastgroup  # the one named group that matched: every branch has one
        assert kind is not None
        token = match[kind]
        match kind:
            case "punct":
                tokens.append(("punct", token))
            case "single" | "double":
                tokens.append(("str", _unescape(token) if "\\" in token else token))
            case "number":
                tokens.append(("value", _number(token, field)))
            case _:
                tokens.append(("value", _WORDS[token]))
    return _dict_from_tokens(tokens, field)


def _number(text: str, field: str) -> int | float:
    digits = len(text) - text.startswith("-") - ("." in text)
    if digits > MAX_DIGITS:
        raise BodyError(f"{field}: a number of {digits} digits; numbers in a dict string may "
                        f"have at most {MAX_DIGITS} (send ids as strings)")
    return float(text) if "." in text else int(text)


def _unescape(text: str) -> str:
    return re.sub(r"\\(.)", r"\1", text)


def _dict_from_tokens(tokens: list[tuple[str, Any]], field: str) -> dict[str, Any]:
    error = BodyError(f"{field} must be one flat dict such as {_EXAMPLE}: string keys, and "
                      "string, number, true/false or null values")
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
