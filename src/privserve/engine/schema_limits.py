"""What an output schema may ask for, checked before any grammar is built from it.

A grammar grows with the numbers in its schema: `maxLength` 10^9 is a 222-byte request whose
grammar would not fit in memory, and an `enum` of 10,000 strings makes every token of every
request in the same step wait on it. These bounds keep one request's constraint cheap for
everyone; a schema past one is a 400 that names where in the schema it is.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from re import _parser as regex_parser  # type: ignore[attr-defined]  # sizes a pattern
from typing import Any

from privserve.errors import InvalidRequest


@dataclass(frozen=True)
class SchemaLimits:
    # minLength, maxLength, minItems, maxItems, a pattern's {n,m}: llama.cpp's grammar parser
    # itself refuses a repetition of about a thousand items of an object.
    max_repeat: int = 1000
    max_alternatives: int = 1000  # values of one enum (OpenAI's limit), branches of a oneOf
    max_nodes: int = 4000  # schemas and sub-schemas in one document
    max_depth: int = 32  # sub-schemas inside sub-schemas
    max_pattern_cost: int = 4000  # characters a pattern's repetitions expand to
    max_grammar_bytes: int = 256 * 1024  # the grammar built from the whole schema


DEFAULT_LIMITS = SchemaLimits()

_COUNT_KEYWORDS = ("minLength", "maxLength", "minItems", "maxItems", "minProperties")
_BRANCH_KEYWORDS = ("oneOf", "anyOf", "allOf")
_SUBSCHEMA_KEYWORDS = ("items", "additionalProperties", "not", "contains")
_SUBSCHEMA_MAPS = ("properties", "$defs", "definitions", "patternProperties")


def check_schema(schema: object, *, param: str, limits: SchemaLimits = DEFAULT_LIMITS) -> None:
    """Raises InvalidRequest naming the first place where `schema` asks for more than the
    limits allow; `param` is where the schema sits in the request."""
    _Walker(limits).visit(schema, param, 0)


class _Walker:
    def __init__(self, limits: SchemaLimits) -> None:
        self._limits = limits
        self._nodes = 0

    def visit(self, schema: object, path: str, depth: int) -> None:
        if isinstance(schema, bool):
            return
        if not isinstance(schema, Mapping):
            raise InvalidRequest("a JSON schema must be an object or a boolean", param=path)
        limits = self._limits
        self._nodes += 1
        if self._nodes > limits.max_nodes:
            raise InvalidRequest(
                f"the schema has more than {limits.max_nodes} sub-schemas", param=path
            )
        if depth > limits.max_depth:
            raise InvalidRequest(
                f"the schema nests deeper than {limits.max_depth} levels", param=path
            )
        for keyword in _COUNT_KEYWORDS:
            if keyword in schema:
                self._check_count(schema[keyword], f"{path}.{keyword}")
        if "enum" in schema:
            self._check_alternatives(schema["enum"], f"{path}.enum", "values")
        if isinstance(schema.get("pattern"), str):
            self._check_pattern(schema["pattern"], f"{path}.pattern")
        for keyword in _BRANCH_KEYWORDS:
            if keyword in schema:
                branches = schema[keyword]
                self._check_alternatives(branches, f"{path}.{keyword}", "branches")
                for i, branch in enumerate(branches):
                    self.visit(branch, f"{path}.{keyword}[{i}]", depth + 1)
        for keyword in _SUBSCHEMA_KEYWORDS:
            sub = schema.get(keyword)
            if isinstance(sub, list):  # tuple-style `items`
                for i, item in enumerate(sub):
                    self.visit(item, f"{path}.{keyword}[{i}]", depth + 1)
            elif sub is not None:
                self.visit(sub, f"{path}.{keyword}", depth + 1)
        if isinstance(schema.get("prefixItems"), list):
            for i, item in enumerate(schema["prefixItems"]):
                self.visit(item, f"{path}.prefixItems[{i}]", depth + 1)
        for keyword in _SUBSCHEMA_MAPS:
            subs = schema.get(keyword)
            if isinstance(subs, Mapping):
                for name, sub in subs.items():
                    self.visit(sub, f"{path}.{keyword}.{name}", depth + 1)

    def _check_count(self, value: object, path: str) -> None:
        limit = self._limits.max_repeat
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise InvalidRequest("must be a non-negative integer", param=path)
        if value > limit:
            raise InvalidRequest(
                f"{value} is more than the {limit} this server holds an output to", param=path
            )

    def _check_alternatives(self, values: object, path: str, what: str) -> None:
        if not isinstance(values, list):
            raise InvalidRequest("must be an array", param=path)
        limit = self._limits.max_alternatives
        if len(values) > limit:
            raise InvalidRequest(
                f"{len(values)} {what} are more than the {limit} this server holds an output to",
                param=path,
            )

    def _check_pattern(self, pattern: str, path: str) -> None:
        limit = self._limits.max_pattern_cost
        try:
            parsed = regex_parser.parse(pattern)
        except (re.error, RecursionError, OverflowError) as exc:
            raise InvalidRequest(f"not a valid regular expression: {exc}", param=path) from None
        cost = pattern_cost(parsed)
        if cost > limit:
            raise InvalidRequest(
                f"the pattern's repetitions expand to about {cost} characters; this server "
                f"holds an output to patterns of at most {limit}",
                param=path,
            )


def pattern_cost(parsed: Any) -> int:
    """Roughly how many grammar items a pattern expands to: bounded repetitions are written
    out in full, so `(a{100}){100}` costs 10,000 while `a*` costs 1."""
    total = 0
    for op, arg in parsed:
        name = str(op)
        if name in ("MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT"):
            low, high, sub = arg
            bounded = high if high != regex_parser.MAXREPEAT else low
            total += max(bounded, 1) * pattern_cost(sub)
        elif name == "SUBPATTERN":
            total += pattern_cost(arg[-1])
        elif name == "BRANCH":
            total += sum(pattern_cost(branch) for branch in arg[1])
        elif name in ("ASSERT", "ASSERT_NOT"):
            total += pattern_cost(arg[1])
        else:
            total += 1
    return total
