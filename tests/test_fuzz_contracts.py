"""Fuzz tests of the contracts' readers: the model manifest (its sidecar and the copy the model
file carries), the product and the bundle manifest. Each is fed mutants of a valid input (see
tests/fuzz.py) and the cases a hostile tester found, and must end in its own error in one line,
or read a valid input. `make bench` runs 10^5 inputs per reader (tests/bench/test_fuzz_bench.py)."""

from __future__ import annotations

import copy
import hashlib
import json
import tracemalloc
import zlib
from pathlib import Path

import msgpack
import numpy as np
import pytest
from hypothesis import example, given

from onboard.contracts.bench import read_bench
from onboard.contracts.bundle import MANIFEST_NAME, verify
from onboard.contracts.manifest import read_manifest, sidecar_path
from onboard.contracts.product import NODATA, Product, decode_product
from onboard.contracts.tiling import TileGrid
from onboard.errors import BenchError, BundleError, ManifestError, ProductError
from tests.conftest import bench_result
from tests.fuzz import (FUZZ_EXAMPLES, HUGE_INT, INF, NAN, assert_refused_or_read, deep, encode, fuzz_settings,
                        mutants)
from tests.test_contracts import _manifest

MANIFEST = _manifest(
    conversion={"profile": "int8", "tensorflow": "2.21.0", "seconds": 0.92, "representative_samples": 256},
    training={"history": [{"stage": "train", "config": {"epochs": 3, "optimizer": "adam", "learning_rate": 0.003},
                           "epochs": [{"epoch": 1, "loss": 1.7148, "val_accuracy": 0.4556}]}], "split_seed": 0})
SIDECAR = json.loads(MANIFEST.to_json())
CARRIED = json.loads(MANIFEST.embedded())


def _product() -> Product:
    """A product with every part present: overlapping tiles, a skip map, a footprint, runtime figures."""
    grid = TileGrid.covering((100, 70), (32, 32), (16, 16))
    rng = np.random.default_rng(0)
    skip_map = (rng.random((grid.rows, grid.cols)) < 0.3).astype(np.uint8) * rng.integers(1, 3, (grid.rows, grid.cols),
                                                                                          dtype=np.uint8)
    class_map = np.where(skip_map == 0, rng.integers(0, 3, skip_map.shape), NODATA).astype(np.uint8)
    confidence = np.where(skip_map == 0, rng.integers(0, 256, skip_map.shape), NODATA).astype(np.uint8)
    return Product(
        scene_id="S2A_T33UUP", scene_shape=(100, 70), scene_bands=("B04", "B08"), scene_bytes=28000,
        footprint={"crs": "EPSG:32633", "transform": [10.0, 0.0, 300000.0, 0.0, -10.0, 5000000.0],
                   "bbox": [300000.0, 4999000.0, 300700.0, 5000000.0]},
        model_id="cnn-s|cnn-l", model_sha256=",".join(["ab" * 32, "cd" * 32]), classes=("a", "b", "c"), grid=grid,
        class_map=class_map, confidence=confidence, uncertain_below=128,
        skipped=[{"reason": "cloud", "tiles": int((skip_map == 1).sum())},
                 {"reason": "no-data", "tiles": int((skip_map == 2).sum())}],
        skip_map=skip_map, created="2026-11-23T00:00:00+00:00",
        runtime={"interpreter": "ai_edge_litert", "threads": 1, "tiles": len(grid), "seconds": 0.012,
                 "tiles_per_s": None, "budget_left": {"cpu_seconds": None, "seconds_per_tile": {"cnn-s": 0.0004}}})


PRODUCT = msgpack.unpackb(_product().encode())


def _edit(tree: dict, edit) -> dict:
    tree = copy.deepcopy(tree)
    edit(tree)
    return tree


def _product_with(edit) -> bytes:
    return encode(_edit(PRODUCT, edit), "msgpack")


def _sidecar_with(edit) -> bytes:
    return encode(_edit(SIDECAR, edit), "json")


def _bomb(size: int) -> bytes:
    """A zlib stream of `size` zero bytes, compressed as far as zlib goes (about 1,000 to 1)."""
    z, chunk = zlib.compressobj(9), bytes(2**20)
    return b"".join(z.compress(chunk[:min(2**20, size - i)]) for i in range(0, size, 2**20)) + z.flush()


# The cases the hostile tester reported, each a crash or an input accepted that should not be.
PRODUCT_CASES = [
    _product_with(lambda b: b["grid"].update(stride=[0, 0])),
    _product_with(lambda b: b["scene"].update(shape=[100])),
    _product_with(lambda b: b.update(class_map=5)),
    _product_with(lambda b: b["scene"].update(bytes=INF)),
    _product_with(lambda b: b["confidence"].update(shape=[2, 2], data=zlib.compress(bytes(4)))),
    _product_with(lambda b: b["class_map"].update(data=_bomb(16 * 2**20))),
    _product_with(lambda b: b.update(scene={**b["scene"], "shape": [2**31 - 1, 2**31 - 1]},
                                     grid={"tile": [1, 1], "stride": [1, 1], "shape": [2**31 - 1, 2**31 - 1]})),
    _product_with(lambda b: b["scene"].update(id="../../etc/cron.d/x")),
    _product_with(lambda b: b["scene"].update(footprint={"crs": "EPSG:x", "transform": [1, 2]})),
    _product_with(lambda b: b.update(runtime=deep())),
]
SIDECAR_CASES = [
    b'{"schema": "orbitlite/model-manifest", "version": 1, "id": ' + deep().json + b"}",
    _sidecar_with(lambda b: b.update(parameters=HUGE_INT)),
    _sidecar_with(lambda b: b.update(input=[1, 32, 32, 4])),
    _sidecar_with(lambda b: b.update(parameters=INF)),
    _sidecar_with(lambda b: b.update(mean=[NAN, 1.0])),
    _sidecar_with(lambda b: b.update(std=[INF, 1.0])),
    _sidecar_with(lambda b: b["input"].update(shape=[1, 0, -32, 2])),
    _sidecar_with(lambda b: b["input"]["quantization"].update(scale=0.0)),
]


def fuzz_manifest(tmp_path: Path, examples: int) -> int:
    """Mutants of a sidecar through `read_manifest`, and of the copy a model carries through
    `check_embedded`; returns how many inputs ran."""
    path, ran = tmp_path / "m.tflite.json", 0

    @fuzz_settings(examples)
    @given(sidecar=mutants(SIDECAR, "json"), carried=mutants(CARRIED, "json"))
    @example(sidecar=MANIFEST.to_json().encode(), carried=MANIFEST.embedded())
    def run(sidecar: bytes, carried: bytes) -> None:
        nonlocal ran
        ran += 1
        path.write_bytes(sidecar)
        assert_refused_or_read(lambda: read_manifest(path), ManifestError)
        assert_refused_or_read(lambda: MANIFEST.check_embedded(carried, "model m.tflite"), ManifestError)

    for case in SIDECAR_CASES:
        run = example(sidecar=case, carried=case)(run)
    run()
    return ran


def fuzz_product(examples: int) -> int:
    """Mutants of a product through `decode_product`; returns how many inputs ran."""
    ran = 0

    @fuzz_settings(examples)
    @given(data=mutants(PRODUCT, "msgpack"))
    def run(data: bytes) -> None:
        nonlocal ran
        ran += 1
        product = assert_refused_or_read(lambda: decode_product(data), ProductError)
        if product is not None:  # what is read holds together
            shape = (product.grid.rows, product.grid.cols)
            assert product.class_map.shape == product.confidence.shape == shape
            assert product.skip_map is None or product.skip_map.shape == shape
            assert sum(product.histogram) == int((product.class_map != NODATA).sum())

    for case in PRODUCT_CASES:
        run = example(data=case)(run)
    run()
    return ran


def bundle_slot(tmp_path: Path) -> tuple[Path, bytes]:
    """A slot holding a (stand-in) model, its manifest and vectors, and the bundle manifest that
    lists them (as `build` writes it; `verify` reads no model)."""
    slot = tmp_path / "slots" / "a"
    slot.mkdir(parents=True)
    (slot / "m.tflite").write_bytes(b"TFL3" * 100)
    _manifest(size_bytes=400, sha256=hashlib.sha256(b"TFL3" * 100).hexdigest()).write(sidecar_path(slot / "m.tflite"))
    (slot / "m.tflite.selftest").write_bytes(b"vectors")
    files = {f.name: {"size": f.stat().st_size, "sha256": hashlib.sha256(f.read_bytes()).hexdigest()}
             for f in sorted(slot.iterdir())}
    listed = encode({"schema": "orbitlite/bundle", "version": 2, "created": "2026-12-02T06:00:00+00:00",
                     "files": files}, "json")
    (slot / MANIFEST_NAME).write_bytes(listed)
    return slot, listed


def fuzz_bundle(tmp_path: Path, examples: int) -> int:
    """Mutants of a slot's bundle.json through `verify`; returns how many inputs ran."""
    slot, listed = bundle_slot(tmp_path)
    tree, ran = json.loads(listed), 0
    sha = tree["files"]["m.tflite"]["sha256"]

    @fuzz_settings(examples)
    @given(data=mutants(tree, "json"))
    @example(data=encode({**tree, "files": {"m.tflite": {"size": INF, "sha256": sha}}}, "json"))
    @example(data=encode({**tree, "files": deep()}, "json"))
    @example(data=encode({**tree, "files": {"x" * 300: {"size": 1, "sha256": sha}}}, "json"))
    @example(data=encode({**tree, "files": {"é" * 200: {"size": 1, "sha256": sha}}}, "json"))
    @example(data=encode({**tree, "files": {"../m.tflite": {"size": 400, "sha256": sha}}}, "json"))
    @example(data=encode({**tree, "files": {"m.tflite\x00": {"size": 400, "sha256": sha}}}, "json"))
    def run(data: bytes) -> None:
        nonlocal ran
        ran += 1
        (slot / MANIFEST_NAME).write_bytes(data)
        assert_refused_or_read(lambda: verify(slot), BundleError)

    run()
    return ran


def fuzz_bench_result(tmp_path: Path, examples: int) -> int:
    """Mutants of an `orbitlite hil bench` result through `read_bench`; returns how many inputs ran."""
    tree, ran, path = json.loads(bench_result()), 0, tmp_path / "result.json"

    @fuzz_settings(examples)
    @given(data=mutants(tree, "json"))
    @example(data=encode({**tree, "measured": {**tree["measured"], "latencies_us": deep()}}, "json"))
    @example(data=encode({**tree, "energy": {**tree["energy"], "mj_per_tile": INF}}, "json"))
    def run(data: bytes) -> None:
        nonlocal ran
        ran += 1
        path.write_bytes(data)
        result = assert_refused_or_read(lambda: read_bench(path), BenchError)
        if result is not None:
            m = result.measured.main
            assert m.min_us <= m.p50_us <= m.p99_us <= m.max_us and result.tiles_per_s >= 0

    run()
    return ran


def test_the_seeds_are_valid(tmp_path):
    """The fuzzers start from inputs their readers accept."""
    (tmp_path / "m.json").write_bytes(encode(SIDECAR, "json"))
    assert read_manifest(tmp_path / "m.json") == MANIFEST
    MANIFEST.check_embedded(encode(CARRIED, "json"), "model m.tflite")
    product = decode_product(encode(PRODUCT, "msgpack"))
    np.testing.assert_array_equal(product.skip_map, _product().skip_map)
    assert product.footprint == _product().footprint and product.runtime == _product().runtime
    slot, _ = bundle_slot(tmp_path)
    assert verify(slot).models == ["m.tflite"]
    (tmp_path / "result.json").write_text(bench_result())
    assert read_bench(tmp_path / "result.json").tiles_per_s == 14428.0


def test_manifest_reader_fuzz(tmp_path):
    assert fuzz_manifest(tmp_path, FUZZ_EXAMPLES) >= FUZZ_EXAMPLES


def test_product_reader_fuzz():
    assert fuzz_product(FUZZ_EXAMPLES) >= FUZZ_EXAMPLES


def test_bundle_reader_fuzz(tmp_path):
    assert fuzz_bundle(tmp_path, FUZZ_EXAMPLES) >= FUZZ_EXAMPLES


def test_bench_result_reader_fuzz(tmp_path):
    assert fuzz_bench_result(tmp_path, FUZZ_EXAMPLES) >= FUZZ_EXAMPLES


def test_a_zlib_bomb_is_refused_without_inflating_it():
    """A 64 MiB class map in a 64 kB stream, where the grid holds 24 tiles: the reader inflates
    no more than the grid needs before it refuses the product."""
    data = _product_with(lambda b: b["class_map"].update(data=_bomb(64 * 2**20)))
    tracemalloc.start()
    try:
        with pytest.raises(ProductError, match="class_map: its zlib stream does not hold exactly the 24 bytes"):
            decode_product(data)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 2**20, f"{peak:,} bytes allocated to refuse a bomb"
