"""Limits on an LLM's answer, and on the text of it that we keep or echo.

    clip(text, NAME_CHARS)      # at most that many characters, the cut marked
    quoted(text, NAME_CHARS)    # one line, JSON-quoted: safe to paste into a prompt

An answer is untrusted input: whatever it holds must cost bounded time and
memory and leave bounded text behind. An answer over MAX_ANSWER_BYTES is
refused before it is parsed; its YAML may hold at most MAX_YAML_NODES
values, nested at most MAX_YAML_DEPTH deep, and no aliases (yamlio's
load_untrusted_yaml); at most `max_ideas(n)` of its ideas are read. Idea
names, rationales, rejection reasons and error messages are clipped
wherever they are stored, and clipped shorter and quoted where the next
prompt echoes them. The limits sit far above any honest answer: an answer
of 8192 tokens is about 32 KB and a few hundred values.
"""

from __future__ import annotations

import json

MAX_ANSWER_BYTES = 64 * 1024
MAX_YAML_NODES = 5000
MAX_YAML_DEPTH = 16
NAME_CHARS = 120
RATIONALE_CHARS = 1000
REASON_CHARS = 2000  # a config error lists every problem of an idea: keep them readable
ECHO_CHARS = 400  # of a reason pasted into the next prompt


def max_ideas(n: int) -> int:
    """Ideas read from an answer that was asked for `n` configurations."""
    return max(16, 2 * n)


def clip(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... [cut: {len(text) - limit} more characters]"


def quoted(text: object, limit: int) -> str:
    """`text` as one JSON string of at most about `limit` characters: its
    whitespace (line breaks included) collapsed to single spaces and its
    backticks made quotes, so an echoed value can neither start a line (a
    Markdown heading) nor open a code fence or an inline span."""
    flat = " ".join(str(text).split()).replace("`", "'")
    return json.dumps(clip(flat, limit), ensure_ascii=False)
