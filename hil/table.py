"""The plain-text tables the `hil` commands print: columns left-aligned, two spaces apart."""

from __future__ import annotations

from typing import Sequence


def text_table(head: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(x) for x in col) for col in zip(head, *rows)]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(line, widths)).rstrip() for line in [head, *rows])
