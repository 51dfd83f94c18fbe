"""Progress bars on stderr for long work, shown only to a person at a terminal, so logs and
error output stay clean when the output is piped."""

from __future__ import annotations

import contextlib
import sys
from typing import Iterator, Protocol

import click


class Bar(Protocol):
    def update(self, n: int) -> None: ...


class _Silent:
    def update(self, n: int) -> None:
        pass


@contextlib.contextmanager
def progress_bar(length: int, label: str) -> Iterator[Bar]:
    if not sys.stderr.isatty():
        yield _Silent()
        return
    with click.progressbar(length=length, label=label, file=sys.stderr) as bar:
        yield bar
