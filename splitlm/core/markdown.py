"""Escaping user strings (domain labels, ids, snippets) for Markdown tables and text.

A label is data, not markup: a newline, `|` or NUL in it must not end a table row, add a column or
corrupt the file. `cell` makes any string safe inside a table cell (and in running text).
"""

from __future__ import annotations

import re

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_SPECIAL = re.compile(r"([\\`*_\[\]<>|#])")


def cell(text: object) -> str:
    """`text` on one line, with Markdown's special characters backslash-escaped and control characters dropped."""
    flat = " ".join(str(text).replace("\r", "\n").split("\n"))
    return _SPECIAL.sub(r"\\\1", _CONTROL.sub("\ufffd", flat))
