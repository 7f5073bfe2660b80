"""`response_format` to the constraint, and the constraint to the grammar the llama engine
enforces."""

from __future__ import annotations

import pytest

from privserve.engine.llama.grammar import constraint_grammar
from privserve.errors import InvalidRequest
from privserve.protocol.chat import ResponseFormat
from privserve.services.chat import output_constraint


def output_grammar(response_format: ResponseFormat | None) -> str | None:
    constraint = output_constraint(response_format)
    return None if constraint is None else constraint_grammar(constraint)


def test_response_formats_become_grammars() -> None:
    assert output_grammar(None) is None
    assert output_grammar(ResponseFormat(type="text")) is None
    assert "object" in (output_grammar(ResponseFormat(type="json_object")) or "")
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}
    grammar = output_grammar(
        ResponseFormat.model_validate(
            {"type": "json_schema", "json_schema": {"name": "n", "schema": schema}}
        )
    )
    assert grammar is not None and '"\\"n\\""' in grammar and "root ::=" in grammar
    bad = ResponseFormat.model_validate(
        {"type": "json_schema", "json_schema": {"schema": {"$ref": "#/nowhere"}}}
    )
    with pytest.raises(InvalidRequest) as raised:
        output_grammar(bad)
    assert raised.value.param == "response_format.json_schema.schema"


def test_grammar_strings_admit_no_raw_control_characters() -> None:
    """JSON forbids a raw newline, a tab or a bare quote inside a string: the grammar must,
    too, or a model can write a string no JSON parser reads back."""
    from llama_cpp.llama_grammar import LlamaGrammar

    schema = {
        "type": "object",
        "properties": {
            "note": {"type": "string", "maxLength": 9},
            "code": {"type": "string", "pattern": "^.{3}$"},
        },
    }
    grammar = output_grammar(
        ResponseFormat.model_validate(
            {"type": "json_schema", "json_schema": {"name": "n", "schema": schema}}
        )
    )
    assert grammar is not None
    rules = dict(line.split(" ::= ", 1) for line in grammar.splitlines() if " ::= " in line)
    assert rules["char"].startswith(r'[^"\\\x7F\x00-\x1F] |')
    assert rules["dot"] == r'[^"\\\x7F\x00-\x1F]'  # a pattern's `.`: no bare quote either
    LlamaGrammar.from_string(grammar, verbose=False)
