"""Shared helpers for the fuzz tests of the readers of outside data (contracts, rasters, configs).

A fuzz test takes a valid input, encoded as its reader reads it, and feeds the reader mutants of
it: bytes flipped, cut, inserted, spans dropped or repeated; or, one level up, the decoded tree
(JSON object, msgpack map) with values replaced by wrong types, huge, negative, NaN or infinite
numbers, long or odd strings, deep nesting, keys dropped or added, lists cut or grown. The reader
must return a valid result or raise the project's own error in one line; anything else (a crash,
another exception) fails the test, and Hypothesis shrinks it to a small case.

    @fuzz_settings(FUZZ_EXAMPLES)
    @given(mutant=mutants(seed_tree, "json"))
    @example(mutant=b'{"version": 1e999}')
    def test_reader(mutant): assert_refused_or_read(lambda: read(mutant), ReaderError)

`make test` runs `FUZZ_EXAMPLES` inputs per reader, derandomized (the same inputs on every run);
`make bench` runs `BENCH_EXAMPLES` (ORBITLITE_FUZZ_EXAMPLES, 10^5 by default) through
tests/bench/test_fuzz_bench.py.
"""

from __future__ import annotations

import copy
import json
import math
import os
import random
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

import msgpack
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

Format = Literal["json", "msgpack"]
T = TypeVar("T")
FUZZ_EXAMPLES = 500
BENCH_EXAMPLES = int(os.environ.get("ORBITLITE_FUZZ_EXAMPLES", "100000"))
DEEP = 100_000  # nesting far past any recursion limit


def fuzz_settings(examples: int) -> settings:
    """Deterministic and without deadlines: the same inputs on every run, whatever the machine."""
    return settings(max_examples=examples, derandomize=True, deadline=None, database=None, print_blob=False,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.function_scoped_fixture])


@dataclass(frozen=True)
class Raw:
    """Bytes spliced verbatim into an encoded tree: what its encoder would refuse to write (a
    5,000-digit integer, nesting 100,000 deep, JSON's NaN)."""

    json: bytes
    msgpack: bytes


def deep(n: int = DEEP) -> Raw:
    return Raw(b"[" * n + b"]" * n, b"\x91" * n + b"\xc0")


HUGE_INT = Raw(b"9" * 5000, b"\xcf" + b"\xff" * 8)  # msgpack's largest integer stands in
NAN = Raw(b"NaN", msgpack.packb(math.nan))
INF = Raw(b"Infinity", msgpack.packb(math.inf))
NEG_INF = Raw(b"-Infinity", msgpack.packb(-math.inf))
BAD_UTF8 = Raw(b'"\\ud800"', b"\xa2\xed\xa0")

# Values that readers have tripped on, or might: every type where another is expected, the edges
# of integer and float ranges, strings that are long, empty, path-like or not text.
NASTY: list[Any] = [
    None, True, False, 0, -1, 1, 2, 255, 256, 2**31, 2**32, 2**53 + 1, 2**63 - 1, -(2**63), 2**64 - 1,
    0.0, -0.0, 0.5, -1.5, 1e300, -1e300, 5e-324, 1e-300, NAN, INF, NEG_INF, HUGE_INT, deep(), deep(40),
    "", "a", "x" * 300, "x" * 100_000, "a/b", "..", ".", "/etc/passwd", "\x00", "é" * 200, "\n", BAD_UTF8,
    "EPSG:x", "zlib", "uint8", "int8", "float32",
    [], [0], [1, 2, 3], [0, 0], [-1, -1], [None], ["x"], [1.5, math.pi], list(range(300)),
    {}, {"k": 1}, {"": None}, b"", b"\x00" * 10,
]


def encode(tree: Any, format: Format) -> bytes:
    """`tree` as `format`, with `Raw` values spliced in as their bytes."""
    raws: list[Raw] = []

    def mark(value: Any) -> Any:
        if isinstance(value, Raw):
            raws.append(value)
            return f"\x01raw{len(raws) - 1}\x01"
        if isinstance(value, dict):
            return {k: mark(v) for k, v in value.items()}
        if isinstance(value, list):
            return [mark(v) for v in value]
        if isinstance(value, (bytes, bytearray)) and format == "json":
            return value.hex()
        if isinstance(value, int) and format == "msgpack" and not -(2**63) <= value < 2**64:
            return mark(HUGE_INT)
        return value

    marked = mark(tree)
    if format == "json":
        data = json.dumps(marked).encode()
        for i, raw in enumerate(raws):
            data = data.replace(json.dumps(f"\x01raw{i}\x01").encode(), raw.json)
    else:
        data = msgpack.packb(marked, use_bin_type=True)
        for i, raw in enumerate(raws):
            data = data.replace(msgpack.packb(f"\x01raw{i}\x01"), raw.msgpack)
    return data


def _paths(tree: Any, prefix: tuple = ()) -> list[tuple]:
    """Every place in `tree` a value sits, as a tuple of keys and indices."""
    out = [prefix]
    if isinstance(tree, dict):
        for k, v in tree.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(tree, list) and len(tree) <= 64:  # a long list: its first elements stand for all
        for i, v in enumerate(tree):
            out += _paths(v, (*prefix, i))
    elif isinstance(tree, list):
        for i, v in enumerate(tree[:4]):
            out += _paths(v, (*prefix, i))
    return out


def _get(tree: Any, path: tuple) -> Any:
    for key in path:
        tree = tree[key]
    return tree


class Choices:
    """Where a mutation's choices come from: a Hypothesis `draw` (the inputs of a test, shrunk to a
    small case when one fails) or a seeded `random.Random` (`random_inputs`: 10^5 inputs at the
    speed of the reader, not of Hypothesis's engine, for `make bench`)."""

    def __init__(self, draw: Callable | None = None, rng: random.Random | None = None) -> None:
        self._draw, self._rng = draw, rng

    def pick(self, options: Sequence[T]) -> T:
        return self._draw(st.sampled_from(options)) if self._draw else self._rng.choice(options)

    def integer(self, low: int, high: int) -> int:
        return self._draw(st.integers(low, high)) if self._draw else self._rng.randint(low, high)

    def binary(self, low: int, high: int) -> bytes:
        if self._draw:
            return self._draw(st.binary(min_size=low, max_size=high))
        return self._rng.randbytes(self._rng.randint(low, high))


def strategy(make: Callable[..., T], *args: Any) -> st.SearchStrategy[T]:
    """`make(choices, *args)` as a Hypothesis strategy."""
    return st.composite(lambda draw: make(Choices(draw=draw), *args))()


def random_inputs(make: Callable[..., T], count: int, *args: Any, seed: int = 0) -> Iterator[T]:
    """`count` inputs `make(choices, *args)` from a seeded generator: the same on every run."""
    choices = Choices(rng=random.Random(seed))
    for _ in range(count):
        yield make(choices, *args)


def _tweak(value: Any, c: Choices) -> Any:
    """A value near `value`: a number moved or scaled, a list or string cut or grown, a map with a
    key dropped or an unknown one added."""
    if isinstance(value, bool):
        return not value
    if isinstance(value, (int, float)):
        return c.pick([value + 1, value - 1, -value, value * 1024, 0, value / 2, float(value)])
    if isinstance(value, str):
        return c.pick([value[:-1], value + value, value.upper(), value + "\x00", (value or "x") * 100]
                      if len(value) < 1000 else [value[:10], ""])
    if isinstance(value, (bytes, bytearray)):
        return c.pick([bytes(value[: len(value) // 2]), bytes(value) * 2, bytes(value)[::-1]])
    if isinstance(value, list):
        return c.pick([value[:-1], value + value[-1:], value[::-1], [value], value * 3])
    if isinstance(value, dict) and value:
        key = c.pick(sorted(value, key=str))
        return c.pick([{k: v for k, v in value.items() if k != key}, {**value, "unknown": 1},
                       {**value, key: [value[key]]}])
    return c.pick(NASTY)


def mutate_tree(c: Choices, tree: Any, mutations: int = 3) -> Any:
    """A copy of `tree` with one to `mutations` values replaced: by a nasty value, by a value near
    it, or by a part of itself (a map by one of its values, a list by an element)."""
    tree = copy.deepcopy(tree)
    for _ in range(c.integer(1, mutations)):
        path = c.pick(_paths(tree))
        value = _get(tree, path)
        kind = c.pick(["nasty", "tweak", "child"])
        if kind == "nasty":
            new = c.pick(NASTY)
        elif kind == "tweak":
            new = _tweak(value, c)
        else:
            children = list(value.values()) if isinstance(value, dict) else value if isinstance(value, list) else []
            new = c.pick(children) if children else c.pick(NASTY)
        new = copy.deepcopy(new)  # neither NASTY nor another part of the tree is edited through it later
        if not path:
            tree = new
        else:
            _get(tree, path[:-1])[path[-1]] = new
    return tree


def mutate_bytes(c: Choices, data: bytes, mutations: int = 4) -> bytes:
    """`data` with one to `mutations` byte-level edits: bits flipped, bytes set, cut short, bytes
    inserted, a span dropped or repeated."""
    data = bytearray(data)
    for _ in range(c.integer(1, mutations)):
        at = c.integer(0, max(len(data) - 1, 0))
        kind = c.pick(["flip", "set", "truncate", "insert", "drop", "repeat"])
        if kind == "flip" and data:
            data[at] ^= 1 << c.integer(0, 7)
        elif kind == "set" and data:
            data[at] = c.pick([0x00, 0xFF, 0x7F, 0x80, 0xC1, 0x22, 0x5B, 0x7B, 0x30, 0x39])
        elif kind == "truncate":
            del data[at:]
        elif kind == "insert":
            data[at:at] = c.binary(1, 16)
        elif kind == "drop":
            del data[at:at + c.integer(1, 64)]
        else:
            span = data[at:at + c.integer(1, 64)]
            data[at:at] = span * c.integer(1, 8)
    return bytes(data)


def mutate(c: Choices, tree: Any, format: Format) -> bytes:
    """An input near the valid `tree`: its encoding mutated byte by byte, or mutated as a tree."""
    if c.pick(["bytes", "tree"]) == "bytes":
        return mutate_bytes(c, encode(tree, format))
    return encode(mutate_tree(c, tree), format)


def mutated_bytes(data: bytes, mutations: int = 4) -> st.SearchStrategy[bytes]:
    return strategy(mutate_bytes, data, mutations)


def mutated_tree(tree: Any, mutations: int = 3) -> st.SearchStrategy[Any]:
    return strategy(mutate_tree, tree, mutations)


def mutants(tree: Any, format: Format) -> st.SearchStrategy[bytes]:
    """Inputs near the valid `tree` (see `mutate`)."""
    return strategy(mutate, tree, format)


def assert_refused_or_read(read: Callable[[], Any], error: type[Exception]) -> Any:
    """`read()`'s result, or None when it refused its input with `error` in one line; any other
    exception propagates and fails the test."""
    try:
        return read()
    except error as exc:
        assert "\n" not in str(exc) and str(exc), f"not one line: {exc!r}"
        return None
