"""Contracts 1 (manifest) and 2 (product): round trips, and refusal of what a reader does not know."""

from __future__ import annotations

import json

import msgpack
import numpy as np
import pytest

from onboard.contracts.manifest import Accuracy, Manifest, Quantization, TensorSpec, read_manifest, sidecar_path
from onboard.contracts.product import NODATA, Product, decode_product, read_product
from onboard.contracts.tiling import TileGrid
from onboard.errors import ManifestError, ProductError


def _manifest(**change) -> Manifest:
    fields = dict(
        id="m", architecture="zoo-cnn-s", task="single-label",
        input=TensorSpec((1, 32, 32, 2), "int8", Quantization(0.04, 3)),
        output=TensorSpec((1, 3), "int8", Quantization(1 / 256, -128)),
        bands=("B04", "B08"), mean=(500.0, 2000.0), std=(300.0, 900.0), classes=("a", "b", "c"),
        parameters=3000, sparsity=0.5,
        accuracy=Accuracy("synthetic-eurosat-like", "test", 90, 0.9, 0.89, 0.98),
        size_bytes=1234, sha256="ab" * 32,
    )
    fields.update(change)
    return Manifest(**fields)


def test_manifest_round_trip(tmp_path):
    m = _manifest()
    path = m.write(tmp_path / "m.tflite.json")
    assert read_manifest(path) == m
    assert sidecar_path(tmp_path / "m.tflite") == path


@pytest.mark.parametrize("edit, message", [
    (lambda b: b.update(version=2), "version 2"),
    (lambda b: b.update(schema="stac"), "not an orbitlite model manifest"),
    (lambda b: b.pop("bands"), "malformed"),
    (lambda b: b.update(mean=[1.0]), "mean and a positive std"),
    (lambda b: b["input"].update(shape=[1, 32, 32, 3]), "does not take 2 bands"),
])
def test_manifest_reader_refuses(tmp_path, edit, message):
    body = json.loads(_manifest().to_json())
    edit(body)
    path = tmp_path / "m.tflite.json"
    path.write_text(json.dumps(body))
    with pytest.raises(ManifestError, match=message):
        read_manifest(path)


def test_manifest_reader_refuses_garbage(tmp_path):
    (tmp_path / "m.json").write_bytes(b"\x00\xff not json")
    with pytest.raises(ManifestError, match="not readable JSON"):
        read_manifest(tmp_path / "m.json")


def _product() -> Product:
    grid = TileGrid.covering((100, 70), (32, 32))
    cm = np.array([[0, 1, 2], [2, 2, NODATA], [1, 0, 0], [2, 1, 1]], np.uint8)
    conf = np.array([[250, 90, 200], [255, 127, 0], [128, 30, 222], [199, 180, 170]], np.uint8)
    return Product(scene_id="s", scene_shape=(100, 70), scene_bands=("B04", "B08"), scene_bytes=28000,
                   footprint=None, model_id="m", model_sha256="ab" * 32, classes=("a", "b", "c"), grid=grid,
                   class_map=cm, confidence=conf, uncertain_below=128,
                   skipped=[{"reason": "no-data", "tiles": 1}], created="2026-11-23T00:00:00+00:00",
                   runtime={"tiles": 11})


def test_product_round_trip(tmp_path):
    p = _product()
    assert p.histogram == [3, 4, 4]
    assert p.uncertain == [1, 4, 7]  # under 128; tile 5 is no-data, tile 6 sits at the threshold
    q = read_product(p.write(tmp_path / "p.msgpack"))
    np.testing.assert_array_equal(q.class_map, p.class_map)
    np.testing.assert_array_equal(q.confidence, p.confidence)
    assert (q.scene_id, q.grid, q.classes, q.skipped, q.created) == (p.scene_id, p.grid, p.classes, p.skipped, p.created)
    body = msgpack.unpackb((tmp_path / "p.msgpack").read_bytes())
    assert body["histogram"] == [3, 4, 4] and body["version"] == 1


@pytest.mark.parametrize("mangle, message", [
    (lambda b: b.update(version=9), "version 9"),
    (lambda b: b.update(schema="x"), "not an orbitlite product"),
    (lambda b: b["class_map"].update(data=b"zz"), "malformed"),
    (lambda b: b["grid"].update(tile=[16, 16], stride=[16, 16]), "does not fit its tile grid"),
])
def test_product_reader_refuses(mangle, message):
    body = msgpack.unpackb(_product().encode())
    mangle(body)
    with pytest.raises(ProductError, match=message):
        decode_product(msgpack.packb(body))


def test_product_reader_refuses_truncated_bytes():
    with pytest.raises(ProductError, match="not a msgpack product"):
        decode_product(_product().encode()[:-40])
