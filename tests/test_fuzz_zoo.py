"""Fuzz tests of the zoo's readers: the grid (TOML), a zoo's config, a member's params.json and
metrics.json (read by the index), and the weight files (.npz, read by load_zoo). Each is fed
mutants of a valid input; it returns a valid result or refuses in one line with ZooError."""

from __future__ import annotations

import io
import json
import zipfile

import numpy as np
from hypothesis import example, given

from ground.errors import ZooError
from ground.training.architectures import ARCHITECTURES
from ground.zoo.grid import members, read_grid
from ground.zoo.index import member_rows, read_npz
from ground.zoo.zoo import ZooConfig, read_config
from onboard.schema import encode_json
from tests.fuzz import (FUZZ_EXAMPLES, HUGE_INT, NAN, assert_refused_or_read, deep, encode, fuzz_settings,
                        mutants, mutated_bytes)

GRID = b"""name = "g"
architectures = ["cnn-s", {name = "cnn-l", set = {dropout = 0.1}}]
seeds = [0, 1]
checkpoints = [1, 2]
[hyper]
activation = ["relu", "tanh"]
learning_rate = [1e-3, 3e-3]
epochs = [2, 3]
[twins]
sparsities = [0.5, 0.9]
restart_epoch = 2
[limits]
time_min = 5
"""
# what the zoo CNNs' configs take (the fuzz test needs no TensorFlow to know it)
FIELDS = {name: {"size", "activation", "initializer", "dropout", "seed"} for name in ARCHITECTURES}
MEMBER = {"key": "cnn-s-s0-0123abcd", "architecture": "cnn-s", "overrides": {"activation": "relu"}, "seed": 0,
          "split_seed": 0, "train": {"epochs": 2, "batch_size": 32, "optimizer": "adam", "learning_rate": 0.003,
                                     "weight_decay": 0.0},
          "checkpoints": [1, 2], "twins": {"sparsities": [0.5]}, "limits": {"time_min": 5.0}}
PARAMS = {"member": MEMBER, "data": {"path": "/d.npz", "source": "synthetic", "patches": 120, "task": "single-label"}}
FORM = {"form": "dense", "target_sparsity": 0.0, "sparsity": 0.0, "metric": "top-1 accuracy", "keras": 0.9,
        "int8": 0.9, "agreement": 1.0, "metrics": {"accuracy": 0.9}, "size_bytes": 10000, "size_gzip_bytes": 6000,
        "latency_us": 80.0, "epochs": []}
METRICS = {"epochs": [{"epoch": 1, "loss": 1.2, "val_accuracy": 0.5}, {"epoch": 2, "loss": None}],
           "train_seconds": 3.2, "forms": [FORM, {**FORM, "form": "magnitude-0.5", "epochs": [{"epoch": 1, "loss": 1.0}]}]}


def fuzz_grid(tmp_path, examples: int) -> int:
    path, ran = tmp_path / "grid.toml", 0

    @fuzz_settings(examples)
    @given(data=mutated_bytes(GRID))
    @example(data=GRID.replace(b"seeds = [0, 1]", b"seeds = [" + b"0," * 100_001 + b"]"))
    @example(data=GRID.replace(b"epochs = [2, 3]", b"epochs = [99999999999999999999]"))
    @example(data=b"name = " + b"[" * 100_000)
    def run(data: bytes) -> None:
        nonlocal ran
        ran += 1
        path.write_bytes(data)
        assert_refused_or_read(lambda: members(read_grid(path), FIELDS), ZooError)

    run()
    return ran


def fuzz_member(tmp_path, examples: int) -> int:
    folder, ran = tmp_path / MEMBER["key"], 0
    folder.mkdir()
    (folder / ".done.json").write_text(json.dumps({"key": MEMBER["key"], "finished_at": "2026-12-02T00:00:00Z",
                                                    "seconds": 1.0}))
    for name, tree in (("params.json", PARAMS), ("metrics.json", METRICS)):
        other = "metrics.json" if name == "params.json" else "params.json"
        (folder / other).write_bytes(encode_json(PARAMS if other == "params.json" else METRICS))

        @fuzz_settings(examples)
        @given(data=mutants(tree, "json"))
        @example(data=encode({**tree, list(tree)[0]: deep()}, "json"))
        @example(data=encode({**tree, list(tree)[-1]: HUGE_INT}, "json"))
        @example(data=encode({**tree, list(tree)[-1]: NAN}, "json"))
        def run(data: bytes) -> None:
            nonlocal ran
            ran += 1
            (folder / name).write_bytes(data)
            assert_refused_or_read(lambda: member_rows(folder), ZooError)

        run()
    return ran


def fuzz_config(tmp_path, examples: int) -> int:
    grid = read_grid_text(tmp_path)
    tree = json.loads(encode_json(ZooConfig(grid=grid, data="/d.npz", members=tuple(members(grid, FIELDS)))))
    ran = 0

    @fuzz_settings(examples)
    @given(data=mutants(tree, "json"))
    @example(data=encode({**tree, "members": deep()}, "json"))
    def run(data: bytes) -> None:
        nonlocal ran
        ran += 1
        (tmp_path / "config.json").write_bytes(data)
        assert_refused_or_read(lambda: read_config(tmp_path), ZooError)

    run()
    return ran


def fuzz_npz(tmp_path, examples: int) -> int:
    buf = io.BytesIO()
    np.savez_compressed(buf, **{"conv1/kernel": np.ones((3, 3, 4, 8), np.float32), "conv1/bias": np.zeros(8, np.float32)})
    valid, path, ran = buf.getvalue(), tmp_path / "checkpoint_1.npz", 0

    @fuzz_settings(examples)
    @given(data=mutated_bytes(valid))
    @example(data=valid)
    @example(data=_bomb())
    def run(data: bytes) -> None:
        nonlocal ran
        ran += 1
        path.write_bytes(data)
        arrays = assert_refused_or_read(lambda: read_npz(path, limit=1 << 20), ZooError)
        assert arrays is None or all(isinstance(a, np.ndarray) for a in arrays.values())

    run()
    return ran


def read_grid_text(tmp_path):
    (tmp_path / "seed-grid.toml").write_bytes(GRID)
    return read_grid(tmp_path / "seed-grid.toml")


def _bomb() -> bytes:
    """An .npz whose one array would inflate to 64 MB from a few kB."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        with z.open("w.npy", "w", force_zip64=True) as f:
            np.lib.format.write_array(f, np.zeros(8 << 20, np.float64))
    return buf.getvalue()


def test_the_seeds_are_valid(tmp_path):
    assert len(members(read_grid_text(tmp_path), FIELDS)) == 2 * 2 * 2 * 2 * 2
    folder = tmp_path / MEMBER["key"]
    folder.mkdir()
    (folder / ".done.json").write_text(json.dumps({"key": MEMBER["key"], "finished_at": "2026-12-02T00:00:00Z",
                                                    "seconds": 1.0}))
    (folder / "params.json").write_bytes(encode_json(PARAMS))
    (folder / "metrics.json").write_bytes(encode_json(METRICS))
    rows, epochs = member_rows(folder)
    assert [r["form"] for r in rows] == ["dense", "magnitude-0.5"] and len(epochs) == 3


def test_a_zip_bomb_is_refused_unread(tmp_path):
    path = tmp_path / "b.npz"
    path.write_bytes(_bomb())
    try:
        read_npz(path, limit=1 << 20)
    except ZooError as exc:
        assert "would take 64 MB" in str(exc)
    else:
        raise AssertionError("a 64 MB array was read under a 1 MB limit")


def test_grid_fuzz(tmp_path):
    assert fuzz_grid(tmp_path, FUZZ_EXAMPLES) >= FUZZ_EXAMPLES


def test_member_fuzz(tmp_path):
    assert fuzz_member(tmp_path, FUZZ_EXAMPLES) >= 2 * FUZZ_EXAMPLES


def test_config_fuzz(tmp_path):
    assert fuzz_config(tmp_path, FUZZ_EXAMPLES) >= FUZZ_EXAMPLES


def test_npz_fuzz(tmp_path):
    assert fuzz_npz(tmp_path, FUZZ_EXAMPLES) >= FUZZ_EXAMPLES
