"""Fuzz tests of the scene readers: `.npy`, GeoTIFF, a band folder, a raw file with its sidecar.
Each input is opened with `open_raster` and every strip of every band read, under a time bound
(SIGALRM) and a memory bound (tracemalloc's peak); it must read, or end in one SceneError line.
The GeoTIFF mutants start from small files tifffile writes in the layouts scenes come in (striped,
tiled, compressed, predictors, a stack of pages, GDAL metadata and geotags) and edit them byte by
byte and tag by tag (types, counts, values, the next-IFD pointer); they are seeded with the cases a
hostile tester found. `make bench` runs 10^5 inputs per reader (tests/bench/test_fuzz_bench.py)."""

from __future__ import annotations

import io
import itertools
import json
import re
import signal
import struct
import time
import tracemalloc
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import Any, Callable, Iterator, TypeVar

import numpy as np
import pytest
import tifffile
from hypothesis import example, given

from onboard.errors import SceneError
from onboard.scenes.geotiff import MAX_PAGES
from onboard.scenes.reader import open_raster
from tests.fuzz import (FUZZ_EXAMPLES, HUGE_INT, INF, NAN, Choices, assert_refused_or_read, deep, encode,
                        fuzz_settings, mutate, mutate_bytes, random_inputs, strategy)
from tests.test_raster import gdal_metadata, geokeys, georeference

TIME_LIMIT = 20.0  # seconds one input may take, far above what any does; a hang fails the test
MEMORY_LIMIT = 256 << 20  # bytes allocated at peak while one input is read (tracemalloc)
BUFFER_BYTES = 4 << 20  # the strip buffer the reads fill, at most
# Hypothesis's engine costs ~25 ms an input, several times what a reader takes; `make test` runs
# this many per reader through it, `make bench` 10^5 from a seeded generator (`fast`).
EXAMPLES = FUZZ_EXAMPLES // 5
T = TypeVar("T")
SPEC = {"shape": [3, 20, 30], "dtype": "uint16", "bands": ["B02", "B03", "B04"]}  # the seeds' scene


class Overrun(BaseException):
    """An input that ran past TIME_LIMIT: not an Exception, so no reader turns it into its own error."""


@contextmanager
def bounded() -> Iterator[None]:
    """Fail the input if it runs longer than TIME_LIMIT or allocates more than MEMORY_LIMIT."""

    def alarm(signum: int, frame: Any) -> None:
        raise Overrun

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, TIME_LIMIT)
    tracemalloc.reset_peak()
    before, _ = tracemalloc.get_traced_memory()
    try:
        yield
    except Overrun:
        raise AssertionError(f"an input ran longer than {TIME_LIMIT} s") from None
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    _, peak = tracemalloc.get_traced_memory()
    assert peak - before < MEMORY_LIMIT, f"an input allocated {peak - before:,} bytes at peak"


@contextmanager
def traced() -> Iterator[None]:
    started = not tracemalloc.is_tracing()
    if started:
        tracemalloc.start()
    try:
        yield
    finally:
        if started:
            tracemalloc.stop()


def read_all(path: Path, bands: tuple[str, ...] | None = None) -> None:
    """Open `path` and read every row of every band, in strips and groups of bands that keep the
    buffer under BUFFER_BYTES (as the run does: a strip of tiles of the model's bands)."""
    with open_raster(path, bands) as r:
        rows, cols = r.shape
        row_bytes = cols * r.dtype.itemsize
        strip = max(1, min(64, BUFFER_BYTES // row_bytes))
        group = max(1, min(len(r.bands), BUFFER_BYTES // (strip * row_bytes)))
        for first in range(0, len(r.bands), group):
            index = list(range(first, min(first + group, len(r.bands))))
            out = np.empty((len(index), strip, cols), r.dtype)
            row0 = 0
            while row0 < rows:
                n = r.read_strip(index, row0, out)
                assert 1 <= n <= strip
                row0 += n


def check(read: Callable[[], None]) -> None:
    with bounded():
        assert_refused_or_read(read, SceneError)


def fuzz(make: Callable[[Choices], T], feed: Callable[[T], None], examples: int, cases: list[T], fast: bool,
         save: Path) -> int:
    """Feed each of `cases`, then `examples` inputs made by `make`, to `feed`; returns how many
    ran. Hypothesis makes them (and shrinks a failing one) unless `fast`, when a seeded generator
    does and a failing input is saved to `save` before the failure propagates."""
    ran = 0

    def one(data: T) -> None:
        nonlocal ran
        ran += 1
        feed(data)

    with traced():
        if fast:
            start = time.monotonic()
            for data in itertools.chain(cases, random_inputs(make, examples)):
                try:
                    one(data)
                except BaseException:
                    save.write_text(repr(data))
                    raise
                if ran % 10_000 == 0:
                    print(f"{save.parent.name}: {ran:,} inputs in {time.monotonic() - start:.0f} s", flush=True)
            return ran
        run = fuzz_settings(examples)(given(data=strategy(make))(one))
        for case in cases:
            run = example(data=case)(run)
        run()
    return ran


# -------------------------------------------------------------------------------------------- .npy

def _scene(dtype: Any = np.uint16) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 200, SPEC["shape"]).astype(dtype)


def npy_bytes(header: str | None = None, version: int = 1, data: bytes | None = None) -> bytes:
    """A .npy file of the seed scene; `header`, when given, replaces its header text as is."""
    buffer = io.BytesIO()
    np.save(buffer, _scene())
    whole = buffer.getvalue()
    if header is None:
        return whole
    body = whole[-_scene().nbytes:] if data is None else data
    text = header.encode("latin1")
    if version == 1:
        return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(text)) + text + body
    return b"\x93NUMPY\x02\x00" + struct.pack("<I", len(text)) + text + body


def _header(descr: str = "'<u2'", order: str = "False", shape: str = "(3, 20, 30)") -> str:
    text = f"{{'descr': {descr}, 'fortran_order': {order}, 'shape': {shape}, }}"
    return text + " " * (63 - (10 + len(text)) % 64) + "\n"


SHAPES = ["(3, 20, 30)", "(3, 20", "(3, 20, 30", "(3,", "(", "()", "(0, 20, 30)", "(-1, 20, 30)", "(3, 20, 30, 1)",
          "(20, 30)", "(3, 20, 99999999999999999999)", "(2**40, 1, 1)", "(3, 2" + "0" * 5000 + ")", "[3, 20, 30]",
          "(3.0, 20, 30)", "(True, 20, 30)", "(1048577, 1, 1)", "(1, 1048577, 1)", "(3, 20, 30,)" * 3, "None"]
DESCRS = ["'<u2'", "'>u2'", "'|u1'", "'<f4'", "'<f8'", "'<i2'", "'|O'", "'V99999999'", "'<U9999999'",
          "[('a', '<u2')]", "('<u2', (3,))", "'u9'", "''", "'" + "x" * 5000 + "'", "1", "{}"]
ORDERS = ["False", "True", "0", "None", "'no'"]


def npy_mutant(c: Choices) -> bytes:
    """A .npy whose header is rewritten from parts that are valid or not, cut, or whose bytes
    are mutated anywhere (header, length field, data)."""
    kind = c.pick(["header", "cut", "bytes"])
    if kind == "bytes":
        return mutate_bytes(c, npy_bytes())
    header = _header(c.pick(DESCRS), c.pick(ORDERS), c.pick(SHAPES))
    if kind == "cut":
        header = header[:c.integer(0, len(header))]
    body = _scene().tobytes()
    return npy_bytes(header, c.pick([1, 2]), body[:c.pick([len(body), len(body) - 1, 0])])


HEADER = _header()
NPY_CASES = [
    npy_bytes(HEADER[:HEADER.index("(") + 3]),  # cut inside its shape: tokenize.TokenError
    npy_bytes(HEADER[:HEADER.index("(") + 3] + " " * 20 + "\n"),
    npy_bytes(_header(shape="(3, 20")),
    npy_bytes(_header(shape="(3, 20, 99999999999999999999)")),
    npy_bytes(_header(shape="(1048577, 1, 1)")),
    npy_bytes(_header(descr="'|O'")),
    npy_bytes(_header(descr="'V99999999'")),
    npy_bytes()[:20],
    npy_bytes()[:-1],
]


def fuzz_npy(tmp_path: Path, examples: int, fast: bool = False) -> int:
    path = tmp_path / "s.npy"

    def feed(data: bytes) -> None:
        path.write_bytes(data)
        check(lambda: read_all(path, tuple(SPEC["bands"])))

    return fuzz(npy_mutant, feed, examples, [npy_bytes(), *NPY_CASES], fast, tmp_path / "failing-input")


# ----------------------------------------------------------------------------------------- GeoTIFF

@cache
def tiff_seeds() -> tuple[bytes, ...]:
    """Small GeoTIFFs in the layouts scenes come in, written by tifffile."""
    data = _scene()
    names = gdal_metadata(SPEC["bands"])
    transform = [(34264, "d", 16, (10, 0, 0, 5e5, 0, -10, 0, 4e6, 0, 0, 0, 0, 0, 0, 0, 1), True),
                 (34735, "H", 16, geokeys(32632), True)]
    seeds = []
    for stored, options in [
        (data, dict(planarconfig="separate", rowsperstrip=7, extratags=[*georeference(), names])),
        (np.moveaxis(data, 0, -1), dict(planarconfig="contig", tile=(16, 16), compression="zlib",
                                        extratags=[*transform, names])),
        (np.moveaxis(data, 0, -1).astype(np.uint8), dict(planarconfig="contig", rowsperstrip=5, compression="lzw",
                                                        predictor=True, extratags=georeference(point=True))),
        (data.astype(np.float32), dict(planarconfig="separate", tile=(16, 16), compression="zlib", predictor=3)),
        (data, dict()),  # a stack of pages, one per band
    ]:
        buffer = io.BytesIO()
        tifffile.imwrite(buffer, stored, photometric="minisblack", **options)
        seeds.append(buffer.getvalue())
    return tuple(seeds)


def ifds(data: bytes) -> list[tuple[int, int]]:
    """(offset, number of entries) of each IFD in the chain of a little-endian classic TIFF, as far
    as the chain can be followed."""
    out: list[tuple[int, int]] = []
    try:
        offset = struct.unpack_from("<I", data, 4)[0]
        while offset and len(out) < 64 and offset not in (o for o, _ in out):
            n = struct.unpack_from("<H", data, offset)[0]
            next_offset = struct.unpack_from("<I", data, offset + 2 + 12 * n)[0]
            out.append((offset, n))
            offset = next_offset
    except struct.error:
        pass
    return [(o, n) for o, n in out if n]


def entry(seed: bytes, tag: int, ifd: int = 0) -> int:
    """Where the IFD entry of `tag` starts in `seed`."""
    offset, n = ifds(seed)[ifd]
    for i in range(n):
        if struct.unpack_from("<H", seed, offset + 2 + 12 * i)[0] == tag:
            return offset + 2 + 12 * i
    raise KeyError(tag)


def patched(seed: bytes, at: int, fmt: str, value: int | tuple) -> bytes:
    data = bytearray(seed)
    struct.pack_into("<" + fmt, data, at, *(value if isinstance(value, tuple) else (value,)))
    return bytes(data)


NUMBERS = [0, 1, 2, 3, 7, 8, 16, 255, 256, 0x7FFF, 0x8000, 0xFFFF, 0x10000, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF]


TAGS = [256, 257, 258, 259, 262, 273, 277, 278, 279, 284, 317, 322, 323, 324, 325, 338, 339, 33550, 33922, 34264, 34735,
        42112, 42113]


def tiff_edit(c: Choices, seed: bytes, edits: int = 3) -> bytes:
    """`seed` with one to `edits` edits of its IFDs: an entry's tag, type, count or value set to
    an edge value, another offset in the file or another IFD; the next-IFD pointer set to an IFD
    (a loop), into the file or past it."""
    chain, data = ifds(seed), seed
    if not chain:  # a file mutated before, whose IFDs cannot be found
        return mutate_bytes(c, seed)
    places = [0, 8, len(seed) - 1, len(seed), len(seed) + 1, *(o for o, _ in chain)]
    for _ in range(c.integer(1, edits)):
        offset, n = c.pick(chain)
        at = offset + 2 + 12 * c.integer(0, n - 1)
        field = c.pick(["tag", "type", "count", "value", "value", "short", "next"])
        number = c.pick(NUMBERS + places) if c.pick([True, False]) else c.integer(0, 2**32 - 1)
        if field == "tag":
            data = patched(data, at, "H", c.pick([*TAGS, number & 0xFFFF]))
        elif field == "type":
            data = patched(data, at + 2, "H", c.integer(0, 19))
        elif field == "count":
            data = patched(data, at + 4, "I", number)
        elif field == "value":
            data = patched(data, at + 8, "I", number)
        elif field == "short":
            data = patched(data, at + 8, "HH", (number & 0xFFFF, c.pick([0, 1, number >> 16])))
        else:
            data = patched(data, offset + 2 + 12 * n, "I", c.pick(places))
    return data


def chained(seed: bytes, copies: int, back: int | None) -> bytes:
    """`seed` with `copies` copies of its first IFD chained after its last one; the last copy ends
    the chain, or points back at copy `back` (a loop), or past the file (`back` -1)."""
    chain = ifds(seed)
    (first, n), (last, last_n) = chain[0], chain[-1]
    data = bytearray(seed)
    data += b"\0" * (len(data) % 2)
    ifd = seed[first:first + 2 + 12 * n] + b"\0\0\0\0"
    starts = [len(data) + i * len(ifd) for i in range(copies)]
    data += ifd * copies
    for at, to in zip([last + 2 + 12 * last_n, *(s + 2 + 12 * n for s in starts)],
                      [*starts, 0 if back is None else len(data) + 1 if back < 0 else starts[back]]):
        struct.pack_into("<I", data, at, to)
    return bytes(data)


def spanning(seed: bytes, copies: int) -> bytes:
    """`seed` whose first page's StripOffsets claim 128 kB at the end of the file, with `copies`
    copies of that page chained after it: each page read reads the span again."""
    at = len(seed) + len(seed) % 2
    data = seed + b"\0" * (at - len(seed) + 4 * 2**15)
    return chained(patched(data, entry(seed, 273) + 4, "II", (2**15, at)), copies, None)


def tiff_chain(c: Choices, seed: bytes) -> bytes:
    """`seed` with its chain of IFDs grown: to as many pages as a scene may have, or more, or past
    the 100 IFDs within which tifffile looks for a loop, ending there, looping back or leaving the file."""
    if not ifds(seed):  # a file mutated before, whose IFDs cannot be found
        return mutate_bytes(c, seed)
    copies = c.pick([1, 98, 99, 100, 101, 150, MAX_PAGES - len(ifds(seed)), MAX_PAGES + 1])
    return chained(seed, copies, c.pick([None, -1, 0, copies - 1, c.integer(0, copies - 1)]))


def tiff_mutant(c: Choices, seed: bytes) -> bytes:
    """`seed` with its IFDs edited or chained on, its bytes mutated, or both."""
    kind = c.pick(["edit", "bytes", "both", "chain"])
    if kind == "bytes":
        return mutate_bytes(c, seed)
    if kind == "chain":
        return tiff_chain(c, seed)
    data = tiff_edit(c, seed)
    return mutate_bytes(c, data) if kind == "both" else data


def _tiff_cases() -> list[bytes]:
    """The hostile testers' GeoTIFFs: ImageWidth or ImageLength 0, tags with two values, the
    next-IFD pointer at its own IFD (the reader hung, its memory growing ~53 MB/s), a loop closing
    after 150 IFDs (past tifffile's own check: `serve --once` and `onboard run` hung), a chain of
    more pages than a scene may have, pages whose tags each claim one span of the file (tifffile
    read it once a page: a minute for a few hundred pages over 100 MB)."""
    cases = []
    for seed in tiff_seeds():
        (first, n), *_ = ifds(seed)
        cases += [patched(seed, entry(seed, 256) + 8, "I", 0), patched(seed, entry(seed, 257) + 8, "I", 0),
                  patched(seed, entry(seed, 256) + 2, "HIHH", (3, 2, 30, 30)),
                  patched(seed, entry(seed, 257) + 2, "HIHH", (3, 2, 20, 7)),
                  patched(seed, entry(seed, 258) + 4, "I", 2**31),
                  patched(seed, first + 2 + 12 * n, "I", first)]
    stack = tiff_seeds()[-1]
    (_, _), (second, n), *_ = ifds(stack)
    cases.append(patched(stack, second + 2 + 12 * n, "I", ifds(stack)[0][0]))  # page 2 points back at page 1
    cases += [chained(tiff_seeds()[0], 150, 120), chained(stack, MAX_PAGES, None), spanning(tiff_seeds()[0], 600)]
    return cases


def fuzz_geotiff(tmp_path: Path, examples: int, fast: bool = False) -> int:
    path = tmp_path / "s.tif"

    def feed(data: bytes) -> None:
        path.write_bytes(data)
        check(lambda: read_all(path))

    return fuzz(lambda c: tiff_mutant(c, c.pick(tiff_seeds())), feed, examples, [*tiff_seeds(), *_tiff_cases()],
                fast, tmp_path / "failing-input")


# ------------------------------------------------------------------------------------- band folder

@cache
def folder_seed() -> dict[str, bytes]:
    """A band folder: two 10 m bands and a 20 m band, one tiled and compressed."""
    data = _scene()
    files = {}
    for name, image, options in [("P_B02.tif", data[0], dict(rowsperstrip=4)),
                                 ("P_B03.tif", data[1], dict(tile=(16, 16), compression="zlib")),
                                 ("P_B05_20m.tif", data[2, ::2, ::2], dict(compression="zlib", predictor=True))]:
        buffer = io.BytesIO()
        tifffile.imwrite(buffer, image, photometric="minisblack", extratags=georeference(), **options)
        files[name] = buffer.getvalue()
    return files


def folder_mutant(c: Choices) -> dict[str, bytes]:
    """The band folder with one or two of its files mutated, or one renamed, dropped, doubled or
    replaced by another GeoTIFF."""
    files = dict(folder_seed())
    for _ in range(c.integer(1, 2)):
        name = c.pick(sorted(files))
        kind = c.pick(["mutate", "mutate", "mutate", "rename", "drop", "double", "swap"])
        if kind == "mutate":
            files[name] = tiff_mutant(c, files[name])
        elif kind == "rename":
            files[c.pick(["P_B8A.tif", "P_B02_10m.TIF", "P_B99.tiff", "P_B05.jp2", "notes.txt"])] = files.pop(name)
        elif kind == "drop" and len(files) > 1:
            del files[name]
        elif kind == "double":
            files["Q_" + name[2:]] = files[name]
        else:
            files[name] = c.pick(tiff_seeds())
    return files


def fuzz_band_folder(tmp_path: Path, examples: int, fast: bool = False) -> int:
    folder = tmp_path / "scene"
    folder.mkdir()

    def feed(files: dict[str, bytes]) -> None:
        for name, data in files.items():
            (folder / name).write_bytes(data)
        try:
            check(lambda: read_all(folder))
        finally:
            for name in files:
                (folder / name).unlink()

    cases = [folder_seed(), {**folder_seed(), "P_B05_20m.tif": _tiff_cases()[5]},
             {**folder_seed(), "P_B03.tif": _tiff_cases()[0]}]
    return fuzz(folder_mutant, feed, examples, cases, fast, tmp_path / "failing-input")


# -------------------------------------------------------------------------------- raw and sidecar

SIDECAR = {**SPEC, "footprint": {"crs": "EPSG:32633", "transform": [10, 0, 5e5, 0, -10, 4e6],
                                 "bbox": [5e5, 3999800, 500300, 4e6], "source": "S2A"}}
SIDECAR_CASES = [
    encode({**SIDECAR, "shape": [3, 2**31, 2**31]}, "json"),
    encode({**SIDECAR, "shape": [2**40, 1, 1]}, "json"),
    encode({**SIDECAR, "shape": [3, 20, HUGE_INT]}, "json"),
    encode({**SIDECAR, "shape": [3, 20, 30.5]}, "json"),
    encode({**SIDECAR, "dtype": "V99999999999"}, "json"),
    encode({**SIDECAR, "dtype": "(99999999,99999999)u2"}, "json"),
    encode({**SIDECAR, "dtype": "O"}, "json"),
    encode({**SIDECAR, "bands": deep()}, "json"),
    encode({**SIDECAR, "footprint": {"transform": [NAN, 0, 0, 0, INF, 0]}}, "json"),
    encode({**SIDECAR, "footprint": {"crs": "EPSG:x"}}, "json"),
    b"\xef\xbb\xbf" + encode(SIDECAR, "json"),
]
RAW = _scene().tobytes()


def raw_mutant(c: Choices) -> tuple[bytes, int]:
    """A mutated sidecar, and how many bytes the raw file holds."""
    return mutate(c, SIDECAR, "json"), c.pick([len(RAW), len(RAW), len(RAW) - 1, 0, len(RAW) * 2])


def fuzz_raw(tmp_path: Path, examples: int, fast: bool = False) -> int:
    path = tmp_path / "s.bsq"
    sidecar = path.with_name(path.name + ".json")

    def feed(data: tuple[bytes, int]) -> None:
        meta, size = data
        path.write_bytes((RAW * 2)[:size])
        sidecar.write_bytes(meta)
        check(lambda: read_all(path))

    cases = [(encode(SIDECAR, "json"), len(RAW)), *((case, len(RAW)) for case in SIDECAR_CASES)]
    return fuzz(raw_mutant, feed, examples, cases, fast, tmp_path / "failing-input")


# ------------------------------------------------------------------------------------------ tests

def test_the_seeds_are_read(tmp_path):
    """The fuzzers start from inputs the readers accept, holding the scene they were written from."""
    data = _scene()
    (tmp_path / "s.npy").write_bytes(npy_bytes())
    (tmp_path / "h.npy").write_bytes(npy_bytes(HEADER, version=2))
    for name in ("s.npy", "h.npy"):
        with open_raster(tmp_path / name, SPEC["bands"]) as r:
            out = np.empty((3, 20, 30), np.uint16)
            r.read_strip([0, 1, 2], 0, out)
            np.testing.assert_array_equal(out, data)
    for i, seed in enumerate(tiff_seeds()):
        (tmp_path / f"{i}.tif").write_bytes(seed)
        with open_raster(tmp_path / f"{i}.tif") as r:
            out = np.empty((3, 20, 30), r.dtype)
            r.read_strip([0, 1, 2], 0, out)
            np.testing.assert_array_equal(out, data.astype(r.dtype))
            assert (r.footprint is None) == (i in (3, 4))
    (tmp_path / "f").mkdir()
    for name, seed in folder_seed().items():
        (tmp_path / "f" / name).write_bytes(seed)
    with open_raster(tmp_path / "f") as r:
        assert r.bands == ("B02", "B03", "B05")
        out = np.empty((2, 20, 30), np.uint16)
        r.read_strip([0, 1], 0, out)
        np.testing.assert_array_equal(out, data[:2])
    (tmp_path / "s.bsq").write_bytes(RAW)
    (tmp_path / "s.bsq.json").write_bytes(encode(SIDECAR, "json"))
    with open_raster(tmp_path / "s.bsq") as r:
        assert r.footprint == SIDECAR["footprint"]
        read_all(tmp_path / "s.bsq")


def test_the_reported_cases_are_refused_in_one_line(tmp_path):
    """Each GeoTIFF the hostile testers reported is refused in one SceneError line, in bounded time
    (a chain of pages that loops, wherever it closes, too); the .npy header cut inside its shape is
    refused."""
    for i, case in enumerate(_tiff_cases()):
        (tmp_path / f"{i}.tif").write_bytes(case)
        with bounded():
            try:
                read_all(tmp_path / f"{i}.tif")
                raise AssertionError(f"case {i} was read")
            except SceneError as exc:
                assert "\n" not in str(exc) and f"{i}.tif" in str(exc)
    for i, why in [(5, "chain of pages loops (page 0 points back to page 0)"),
                   (-4, "chain of pages loops (page 1 points back to page 0)"),
                   (-3, "chain of pages loops (page 150 points back to page 121)"),
                   (-2, f"more than the {MAX_PAGES:,} pages a scene may have"),
                   (-1, "hold more than 64 MiB")]:
        with bounded(), pytest.raises(SceneError, match=re.escape(why)):
            read_all(tmp_path / f"{i % len(_tiff_cases())}.tif")
    (tmp_path / "cut.npy").write_bytes(NPY_CASES[0])
    try:
        read_all(tmp_path / "cut.npy", tuple(SPEC["bands"]))
        raise AssertionError("a header cut inside its shape was read")
    except SceneError as exc:
        assert "cut.npy is not a readable .npy file" in str(exc) and "\n" not in str(exc)


def test_npy_reader_fuzz(tmp_path):
    assert fuzz_npy(tmp_path, EXAMPLES) >= EXAMPLES


def test_geotiff_reader_fuzz(tmp_path):
    assert fuzz_geotiff(tmp_path, EXAMPLES) >= EXAMPLES


def test_band_folder_reader_fuzz(tmp_path):
    assert fuzz_band_folder(tmp_path, EXAMPLES) >= EXAMPLES


def test_raw_and_sidecar_reader_fuzz(tmp_path):
    assert fuzz_raw(tmp_path, EXAMPLES) >= EXAMPLES
