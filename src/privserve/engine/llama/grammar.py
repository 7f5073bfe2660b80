"""Output constraints as llama.cpp grammars (GBNF), through llama-cpp-python's translator.

A JSON schema becomes the grammar of exactly the documents it accepts; `json_object` the
translator's grammar of any object. Tool-call tags wrap the document's rule, named through
the translator's own root-rule name. Schemas are bounded first (`schema_limits`), and a
grammar is parsed by llama.cpp once before its request is queued, so a bad one is a 400.
"""

from __future__ import annotations

import json
from typing import Any

from privserve.engine.base import OutputConstraint
from privserve.engine.schema_limits import DEFAULT_LIMITS, check_schema
from privserve.errors import InvalidRequest

ROOT = "root"
_DOCUMENT_RULE = "json-document"

# JSON's unescaped string character. The translator's own admits raw control characters (a
# newline, a tab), and its `.` in a string's pattern admits those and a bare quote, all of
# which JSON forbids inside strings: a model could write a string no parser reads back.
_JSON_CHAR = r'[^"\\\x7F\x00-\x1F]'
_LOOSE_CHAR = r'[^"\\] | '
_LOOSE_DOT = r"[^\x0A\x0D]"


def _converter() -> Any:
    from llama_cpp.llama_grammar import SchemaConverter

    class StrictStringConverter(SchemaConverter):
        """The translator, with JSON's string characters in its `char` and `dot` rules."""

        def _add_rule(self, name: str, rule: str) -> str:
            if name == "char" and rule.startswith(_LOOSE_CHAR):
                rule = _JSON_CHAR + " | " + rule.removeprefix(_LOOSE_CHAR)
            elif name == "dot" and rule == _LOOSE_DOT:
                rule = _JSON_CHAR
            return str(super()._add_rule(name, rule))  # type: ignore[no-untyped-call]

    return StrictStringConverter(  # type: ignore[no-untyped-call]
        prop_order={}, allow_fetch=False, dotall=False, raw_pattern=False
    )


def _gbnf_literal(text: str) -> str:
    # GBNF reads JSON's string escapes (\n, \", \\, \uXXXX).
    return json.dumps(text)


def constraint_grammar(constraint: OutputConstraint) -> str:
    """The GBNF for `constraint`; its schema within the limits, else InvalidRequest."""
    limit = DEFAULT_LIMITS.max_grammar_bytes
    if constraint.gbnf is not None:
        if len(constraint.gbnf.encode("utf-8")) > limit:
            raise InvalidRequest(f"a grammar may have {limit} bytes", param=constraint.param)
        return constraint.gbnf
    if constraint.schema_json is None and constraint.tags is None:
        from llama_cpp.llama_grammar import JSON_GBNF

        return str(JSON_GBNF)
    schema = constraint.schema if constraint.schema_json is not None else {"type": "object"}
    check_schema(schema, param=constraint.param)
    converter = _converter()
    name = "" if constraint.tags is None else _DOCUMENT_RULE
    try:
        schema = converter.resolve_refs(schema, "request")
        converter.visit(schema, name)
    except Exception as exc:  # the translator raises many kinds on what it cannot express
        raise InvalidRequest(
            f"this JSON schema cannot be enforced: {exc}", param=constraint.param
        ) from None
    grammar = str(converter.format_grammar())
    if constraint.tags is not None:
        opening, closing = constraint.tags
        before, after = _gbnf_literal(opening + "\n"), _gbnf_literal("\n" + closing)
        tagged = f"{before} {_DOCUMENT_RULE} {after}"
        more = constraint.max_documents - 1
        repeated = f' ("\\n" {tagged}){{0,{more}}}' if more > 0 else ""
        grammar = f"{ROOT} ::= {tagged}{repeated}\n{grammar}"
    if len(grammar) > limit:
        raise InvalidRequest(
            f"this schema makes a grammar of {len(grammar)} bytes; the limit is {limit}",
            param=constraint.param,
        )
    return grammar


def init_grammar_sampler(lib: Any, vocab: Any, grammar: str, *, param: str) -> Any:
    """A llama.cpp grammar sampler; InvalidRequest when llama.cpp cannot parse the grammar."""
    sampler = lib.llama_sampler_init_grammar(vocab, grammar.encode("utf-8"), ROOT.encode())
    if not sampler:
        what = "this grammar" if param == "grammar" else "the grammar this schema makes"
        raise InvalidRequest(
            f"llama.cpp could not parse {what} (GBNF, with a `{ROOT}` rule; left recursion "
            "and undefined rules are errors)",
            param=param,
        )
    return sampler
