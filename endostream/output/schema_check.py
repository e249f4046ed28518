"""Check a parsed JSON value against the JSON Schemas shipped in ``endostream/schema/``.

The runtime reads its own files back (``sections.json`` for review, evaluation and the
archive's resume check), and a file edited by hand or by another tool must be refused with
one line that says where it is wrong. The shipped schemas use a small part of JSON Schema
(draft 2020-12), and this module implements exactly that part, so the runtime needs no
schema library (``jsonschema`` is a test dependency; the tests check that both agree). A
keyword outside that part raises :class:`ValueError` when the schema is used, so a schema
that grows a new keyword fails its tests instead of being half checked.

>>> schema = {"type": "object", "required": ["a"],
...           "properties": {"a": {"type": "integer", "minimum": 0}}}
>>> first_problem({"a": 3}, schema) is None
True
>>> first_problem({"a": -1}, schema)
'a: -1 is below the minimum 0'
>>> first_problem({}, schema)
"missing field 'a'"
"""

from __future__ import annotations

import json
import re
from importlib import resources
from typing import Any

#: Keywords that only describe (no effect on validity).
_ANNOTATIONS = frozenset({"$schema", "$id", "title", "description", "$defs"})
_TYPES: dict[str, Any] = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    # JSON Schema counts 2.0 as an integer.
    "integer": lambda v: (isinstance(v, int) and not isinstance(v, bool))
    or (isinstance(v, float) and v.is_integer()),
}


def shipped_schema(name: str) -> dict[str, Any]:
    """The schema ``endostream/schema/{name}.schema.json`` shipped with the package."""
    text = resources.files("endostream").joinpath(f"schema/{name}.schema.json").read_text()
    return json.loads(text)


def first_problem(value: Any, schema: dict[str, Any]) -> str | None:
    """``None`` when ``value`` is valid, else one line: where (``sections[2].end_s``) and
    what is wrong."""
    return _check(value, schema, schema, "")


def _where(path: str) -> str:
    return f"{path}: " if path else ""


def _check(value: Any, schema: dict[str, Any], root: dict[str, Any], path: str) -> str | None:
    if "$ref" in schema:
        ref = schema["$ref"]
        if not ref.startswith("#/"):  # a pointer into this schema ("#/properties/x")
            raise ValueError(f"schema reference {ref!r} is not supported")
        target = root
        for part in ref[2:].split("/"):
            target = target[part]
        schema = {**target, **{k: v for k, v in schema.items() if k != "$ref"}}
    unknown = set(schema) - _ANNOTATIONS - _KEYWORDS
    if unknown:
        raise ValueError(f"schema keyword(s) {sorted(unknown)} are not supported")
    for keyword in _ORDER:
        if keyword in schema:
            problem = _KEYWORD_CHECKS[keyword](value, schema, root, path)
            if problem:
                return problem
    return None


def _type(value: Any, schema: dict, root: dict, path: str) -> str | None:
    wanted = schema["type"]
    names = wanted if isinstance(wanted, list) else [wanted]
    if any(_TYPES[n](value) for n in names):
        return None
    return f"{_where(path)}expected {' or '.join(names)}, got {json.dumps(value)[:40]}"


def _const(value: Any, schema: dict, root: dict, path: str) -> str | None:
    if value == schema["const"] and type(value) is type(schema["const"]):
        return None
    return f"{_where(path)}expected {json.dumps(schema['const'])}, got {json.dumps(value)[:40]}"


def _enum(value: Any, schema: dict, root: dict, path: str) -> str | None:
    if value in schema["enum"]:
        return None
    return f"{_where(path)}{json.dumps(value)[:40]} is not one of {json.dumps(schema['enum'])}"


def _bound(keyword: str, ok: Any, words: str):
    def check(value: Any, schema: dict, root: dict, path: str) -> str | None:
        if not _TYPES["number"](value) or ok(value, schema[keyword]):
            return None
        return f"{_where(path)}{value!r} is {words} {schema[keyword]!r}"
    return check


def _min_length(value: Any, schema: dict, root: dict, path: str) -> str | None:
    if not isinstance(value, str) or len(value) >= schema["minLength"]:
        return None
    return f"{_where(path)}shorter than {schema['minLength']} character(s)"


def _pattern(value: Any, schema: dict, root: dict, path: str) -> str | None:
    if not isinstance(value, str) or re.search(schema["pattern"], value):
        return None
    return f"{_where(path)}{value[:40]!r} does not match {schema['pattern']!r}"


def _required(value: Any, schema: dict, root: dict, path: str) -> str | None:
    if not isinstance(value, dict):
        return None
    missing = [k for k in schema["required"] if k not in value]
    if missing:
        return f"{_where(path)}missing field {missing[0]!r}"
    return None


def _properties(value: Any, schema: dict, root: dict, path: str) -> str | None:
    if not isinstance(value, dict):
        return None
    for key, sub in schema["properties"].items():
        if key in value:
            problem = _check(value[key], sub, root, f"{path}.{key}" if path else key)
            if problem:
                return problem
    return None


def _additional(value: Any, schema: dict, root: dict, path: str) -> str | None:
    if not isinstance(value, dict):
        return None
    extra = schema["additionalProperties"]
    for key in value:
        if key in schema.get("properties", {}):
            continue
        if extra is False:
            return f"{_where(path)}unknown field {key!r}"
        if isinstance(extra, dict):
            problem = _check(value[key], extra, root, f"{path}.{key}" if path else key)
            if problem:
                return problem
    return None


def _min_items(value: Any, schema: dict, root: dict, path: str) -> str | None:
    if not isinstance(value, list) or len(value) >= schema["minItems"]:
        return None
    return f"{_where(path)}fewer than {schema['minItems']} item(s)"


def _items(value: Any, schema: dict, root: dict, path: str) -> str | None:
    if not isinstance(value, list):
        return None
    for k, item in enumerate(value):
        problem = _check(item, schema["items"], root, f"{path}[{k}]")
        if problem:
            return problem
    return None


_KEYWORD_CHECKS = {
    "type": _type, "const": _const, "enum": _enum,
    "minimum": _bound("minimum", lambda v, b: v >= b, "below the minimum"),
    "exclusiveMinimum": _bound("exclusiveMinimum", lambda v, b: v > b, "not above"),
    "maximum": _bound("maximum", lambda v, b: v <= b, "above the maximum"),
    "minLength": _min_length, "pattern": _pattern,
    "required": _required, "properties": _properties, "additionalProperties": _additional,
    "minItems": _min_items, "items": _items,
}
#: Type first, so that a wrong type is reported as such and not as a bound.
_ORDER = tuple(_KEYWORD_CHECKS)
_KEYWORDS = frozenset(_KEYWORD_CHECKS)
