"""Function calling: one class per tool-call format, and the plan one request makes.

A chat template with a format of its own gets the tools as transformers passes them and
describes them itself, and its calls are read back in that format: Hermes-style tags
(`hermes.py`, as Qwen2.5 and later write) or Llama 3.x's bare JSON (`llama3.py`). Other
models get privserve's own (`own.py`): the tools described in a system message, one reply
format. Either way, with `tool_choice` "required" or a named function, a constraint holds
the output to exactly that format and to each function's parameter schema; with "auto" an
answer that is a well-formed call to an offered function becomes `tool_calls`.
"""

from privserve.services.tools.buffer import ToolCallBuffer, call_deltas
from privserve.services.tools.plan import (
    MAX_PARALLEL_CALLS,
    ToolPlan,
    plan_tools,
    template_tool_call,
    tool_calls_in,
)

__all__ = [
    "MAX_PARALLEL_CALLS",
    "ToolCallBuffer",
    "ToolPlan",
    "call_deltas",
    "plan_tools",
    "template_tool_call",
    "tool_calls_in",
]
