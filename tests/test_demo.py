"""`orbitlite demo` end to end, shortened, on a fresh output directory."""

from __future__ import annotations

import json

from onboard.contracts.product import read_product
from tests.conftest import orbitlite


def test_demo_produces_every_artefact(tmp_path):
    out = tmp_path / "demo"
    result = orbitlite("demo", "--out", str(out), "--per-class", "100", "--epochs", "4")
    assert result.returncode == 0, result.stderr[-3000:]
    for name in ("synthetic-patches.npz", "cnn-l.keras", "cnn-l-pruned.keras", "cnn-l-pruned-int8.tflite",
                 "cnn-l-pruned-int8.tflite.json", "spyndex-S2-10m.npy", "scene-and-class-map.png"):
        assert (out / name).is_file(), name
        assert str(out / name) in result.stdout, f"the demo says where {name} went"
    (product,) = (out / "products").glob("*.msgpack")
    p = read_product(product)
    assert p.scene_id == "spyndex-S2-10m" and sum(p.histogram) == 100
    manifest = json.loads((out / "cnn-l-pruned-int8.tflite.json").read_text())
    assert abs(manifest["sparsity"] - 0.5) < 0.02 and manifest["accuracy"]["dataset"].startswith("synthetic")
    assert "raw scene   720.0 kB" in result.stdout and "10.0 min" in result.stdout
    assert "SYNTHETIC" in result.stdout


def test_demo_refuses_an_unwritable_output(tmp_path):
    (tmp_path / "f").write_text("")
    result = orbitlite("demo", "--out", str(tmp_path / "f" / "demo"))
    assert result.returncode == 1 and "cannot write to output directory" in result.stderr
