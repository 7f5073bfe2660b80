"""Constraining generation to JSON: llama.cpp grammars (GBNF) for `response_format`.

`json_object` allows any JSON object; `json_schema` allows exactly the documents a schema
accepts, through the JSON-schema-to-GBNF translation llama-cpp-python ships.
"""

from __future__ import annotations

import json
import re
from typing import Any

from privserve.errors import InvalidRequest


def json_object_grammar() -> str:
    """Any JSON object, as OpenAI's `json_object` mode promises (an object, not any value)."""
    from llama_cpp.llama_grammar import JSON_GBNF

    return str(JSON_GBNF)


def json_schema_grammar(schema: dict[str, Any], *, param: str) -> str:
    """A grammar for the documents `schema` accepts; a schema it cannot express is a 400."""
    from llama_cpp.llama_grammar import json_schema_to_gbnf

    try:
        grammar = str(json_schema_to_gbnf(json.dumps(schema)))
    except Exception as exc:  # the translator raises many kinds on what it cannot express
        raise InvalidRequest(f"this JSON schema cannot be enforced: {exc}", param=param) from None
    return strict_string_chars(grammar)


# The translator's string character admits raw control characters (a newline, a tab), and
# its `.` in a string's pattern admits those and a bare quote, all of which JSON forbids
# inside strings: a model could write a string no JSON parser reads back. Both become JSON's
# own unescaped string character.
_JSON_CHAR = r'[^"\\\x7F\x00-\x1F]'
_LOOSE_CHAR = re.compile(r'^char ::= \[\^"\\\\\] \|', re.MULTILINE)
_LOOSE_DOT = re.compile(r"^dot ::= \[\^\\x0A\\x0D\]$", re.MULTILINE)


def strict_string_chars(grammar: str) -> str:
    """The grammar with JSON's own string characters: no raw control characters or quotes."""
    grammar = _LOOSE_CHAR.sub(lambda _: f"char ::= {_JSON_CHAR} |", grammar)
    return _LOOSE_DOT.sub(lambda _: f"dot ::= {_JSON_CHAR}", grammar)
