"""Model zoos (`orbitlite ground zoo`): the grid's validation, a small zoo trained on the local
backend with its sparsified twins, its index and loader, a rerun that skips finished members and
retries failed ones, and the loader dropping diverged members."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from ground.datasets.synthetic import generate_patches
from tests.conftest import assert_one_line_error, orbitlite

pytestmark = pytest.mark.slow

GRID = """\
name = "tiny"
architectures = ["cnn-s"]
seeds = [0, 1]
checkpoints = [1]
[hyper]
epochs = [2]
[twins]
sparsities = [0.5]
epochs = 1
"""


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return generate_patches(20, size=32, bands=("B02", "B03", "B04", "B08"), seed=0).save(
        tmp_path_factory.mktemp("data") / "patches.npz")


@pytest.fixture(scope="module")
def zoo(tmp_path_factory, data) -> Path:
    folder = tmp_path_factory.mktemp("zoo")
    (folder / "grid.toml").write_text(GRID)
    result = orbitlite("ground", "zoo", "run", str(folder / "grid.toml"), "--data", str(data), "--out", str(folder / "z"))
    assert result.returncode == 0, result.stderr
    assert "2 trained, 0 failed; index of 2 members" in result.stdout
    return folder


def test_each_member_has_its_checkpoints_twins_and_metrics(zoo):
    members = sorted(p for p in (zoo / "z" / "members").iterdir() if not p.name.startswith("."))
    assert [p.name.split("-")[2] for p in members] == ["s0", "s1"]
    for member in members:
        names = {p.name for p in member.iterdir()}
        assert {"checkpoint_1.npz", "checkpoint_2.npz", "dense.keras", "params.json", "metrics.json"} <= names
        for form in ("dense", "magnitude-0.5", "vd", "vd-0.5"):
            assert {f"{form}.npz", f"{form}.tflite", f"{form}.tflite.json"} <= names
        metrics = json.loads((member / "metrics.json").read_text())
        assert [e["epoch"] for e in metrics["epochs"]] == [1, 2]
        forms = {f["form"]: f for f in metrics["forms"]}
        assert forms["magnitude-0.5"]["sparsity"] == pytest.approx(0.5, abs=0.01)
        assert forms["vd-0.5"]["sparsity"] == pytest.approx(0.5, abs=0.01)
        assert forms["dense"]["sparsity"] < 0.01
        for f in forms.values():
            assert 0 <= f["int8"] <= 1 and 0 <= f["agreement"] <= 1
            assert 0 < f["size_gzip_bytes"] < f["size_bytes"] and f["latency_us"] > 0
        # a pruned twin compresses better than its dense model
        assert forms["magnitude-0.5"]["size_gzip_bytes"] < forms["dense"]["size_gzip_bytes"]


def test_the_index_and_loader_give_a_table_and_weights_without_tensorflow(zoo):
    from ground.zoo.index import load_zoo

    z = load_zoo(zoo / "z", say=pytest.fail)
    rows = z.table.to_pylist()
    assert len(rows) == 2 * 4 and {r["form"] for r in rows} == {"dense", "magnitude-0.5", "vd", "vd-0.5"}
    assert {r["method"] for r in rows} == {"dense", "magnitude", "variational-dropout"}
    assert {r["activation"] for r in rows} == {"relu"} and {r["seed"] for r in rows} == {0, 1}
    assert z.epoch == {k: 2 for k in z.weights}
    keys, vectors = z.vectors("cnn-s")
    assert len(keys) == 2 and vectors.shape[0] == 2 and vectors.shape[1] > 1000
    assert not np.allclose(vectors[0], vectors[1])  # two seeds, two models
    import pyarrow.parquet as pq

    epochs = pq.read_table(zoo / "z" / "epochs.parquet").to_pylist()
    per_form = {}
    for e in epochs:
        per_form[e["form"]] = per_form.get(e["form"], 0) + 1
    # two members: the dense model's 2 epochs, each twin's 1 of its own training (vd-0.5 is vd re-masked)
    assert per_form == {"dense": 4, "magnitude-0.5": 2, "vd": 2, "vd-0.5": 2}
    assert all(e["loss"] is not None and e["val_accuracy"] is not None for e in epochs)
    z1 = load_zoo(zoo / "z", epoch=1, say=pytest.fail)
    assert set(z1.epoch.values()) == {1}


def test_the_loader_drops_diverged_members_and_says_how_many(zoo, tmp_path):
    copy = tmp_path / "z"
    shutil.copytree(zoo / "z", copy)
    first, second = sorted(p for p in (copy / "members").iterdir() if not p.name.startswith("."))
    weights = dict(np.load(first / "checkpoint_2.npz"))
    np.savez(first / "checkpoint_2.npz", **{k: np.full_like(v, np.nan) for k, v in weights.items()})
    weights = dict(np.load(second / "checkpoint_2.npz"))
    np.savez(second / "checkpoint_2.npz", **{k: v * 1e6 for k, v in weights.items()})
    said = []
    from ground.zoo.index import load_zoo

    z = load_zoo(copy, say=said.append)
    assert z.weights == {} and z.table.num_rows == 0
    assert said and said[0].startswith("dropped 2 of 2 members")
    assert "NaN" in z.dropped[first.name] and "exploded" in z.dropped[second.name]


def test_a_failed_member_is_shown_with_its_log_the_rest_goes_on_and_a_rerun_retries_it(data, tmp_path):
    grid = tmp_path / "grid.toml"
    plain = 'name = "mixed"\nseeds = [0]\n[hyper]\nepochs = [1]\n[twins]\nmethods = []\n'
    grid.write_text('architectures = ["cnn-s", {name = "nas-cell", set = {stem = 0}}]\n' + plain)
    patches = tmp_path / "patches.npz"
    shutil.copy(data, patches)
    out = tmp_path / "z"
    result = orbitlite("ground", "zoo", "run", str(grid), "--data", str(patches), "--out", str(out))
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "1 member(s) failed: `orbitlite ground zoo status" in result.stderr.splitlines()[-1]
    assert "1 trained, 1 failed; index of 1 members" in result.stdout
    status = orbitlite("ground", "zoo", "status", str(out))
    assert status.returncode == 0, status.stderr
    failed = [line for line in status.stdout.splitlines() if line.startswith("failed")]
    assert len(failed) == 1 and "nas-cell" in failed[0] and "stem" in failed[0] and ".jobs/" in failed[0]
    log = Path(failed[0].rsplit("(log: ", 1)[1].rstrip(")"))
    assert "Traceback" in log.read_text()  # the whole story is in the member's log
    assert status.stdout.splitlines()[-1] == "1 done, 1 failed of 2 members"

    # the grid grows by a seed; the new member's data goes bad under it: it fails, the first is skipped
    from ground.zoo.zoo import prepare_zoo, run_zoo

    grid.write_text('architectures = ["cnn-s"]\n' + plain.replace("seeds = [0]", "seeds = [0, 1]"))
    config = prepare_zoo(grid, patches, out)
    pending = orbitlite("ground", "zoo", "status", str(out)).stdout.splitlines()
    assert pending == [f"pending {config.members[1].key}", "1 done, 1 pending of 2 members"]
    good = patches.read_bytes()
    patches.write_bytes(good[:1000])
    said = []
    assert run_zoo(config, out, "local", said.append) == {config.members[1].key: "failed"}
    assert said[0] == "1 of 2 already done, skipped"
    assert orbitlite("ground", "zoo", "status", str(out)).stdout.splitlines()[-1] == "1 done, 1 failed of 2 members"
    patches.write_bytes(good)
    again = orbitlite("ground", "zoo", "status", str(out), "--resubmit-failed")
    assert again.returncode == 0, again.stderr
    assert again.stdout.splitlines()[-1] == "resubmitted 1: 1 done"
    assert orbitlite("ground", "zoo", "status", str(out)).stdout.splitlines()[-1] == "2 done of 2 members"


@pytest.mark.parametrize("grid, fragment", [
    ('name = "g"\narchitectures = ["cnn-s"]\nseeds = [0]\nlearning_rate = 1\n', "learning_rate: unknown key"),
    ('name = "g"\narchitectures = ["cnn-s"]\nseeds = []\n', "seeds: Expected `array` of length >= 1"),
    ('name = "g"\narchitectures = ["cnn-xl"]\nseeds = [0]\n', "unknown architecture 'cnn-xl'"),
    ('name = "g"\narchitectures = ["nas-cell"]\nseeds = [0]\n[hyper]\nactivation = ["relu", "tanh"]\n',
     "hyper.activation has 2 values but nas-cell has no activation"),
    ('name = "g"\narchitectures = [{name = "cnn-s", set = {width = 2}}]\nseeds = [0]\n', "set.width is not a field"),
    ('name = "g"\narchitectures = ["cnn-s"]\nseeds = [0]\n[hyper]\nepochs = [3]\n[twins]\nrestart_epoch = 5\n',
     "twins.restart_epoch 5 is after the last epoch"),
    ('name = "g"\narchitectures = ["cnn-s"]\nseeds = [0]\n[twins]\nsparsities = [1.0]\n', "twins.sparsities[0]"),
    ("name = [", "grid.toml"),
])
def test_a_bad_grid_gets_one_line_naming_it(grid, fragment, data, tmp_path):
    path = tmp_path / "grid.toml"
    path.write_text(grid)
    result = orbitlite("ground", "zoo", "run", str(path), "--data", str(data), "--out", str(tmp_path / "z"))
    assert_one_line_error(result, fragment)


def test_missing_data_or_a_folder_that_is_no_zoo_gets_one_line(tmp_path):
    grid = tmp_path / "grid.toml"
    grid.write_text(GRID)
    assert_one_line_error(orbitlite("ground", "zoo", "run", str(grid), "--data", str(tmp_path / "none.npz"),
                                    "--out", str(tmp_path / "z")), "none.npz")
    assert_one_line_error(orbitlite("ground", "zoo", "status", str(tmp_path)), "is not a zoo")
    assert_one_line_error(orbitlite("ground", "zoo", "index", str(tmp_path)), "is not a zoo")


def test_the_report_shows_forms_twins_and_hyperparameters(zoo, tmp_path):
    result = orbitlite("ground", "zoo", "report", str(zoo / "z"), "--to", str(tmp_path))
    assert result.returncode == 0, result.stderr
    names = {p.name for p in tmp_path.iterdir()}
    assert names == {"zoo-report.md", "zoo-hyperparameters.png", "zoo-twins.png", "zoo-pareto.png"}
    for png in tmp_path.glob("*.png"):
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    text = (tmp_path / "zoo-report.md").read_text()
    assert text.startswith("# Model zoo: 2 members, 8 models")
    for form in ("dense", "magnitude-0.5", "vd", "vd-0.5"):
        assert f"| {form} | 2 |" in text
    assert "| magnitude-0.5 | 2 |" in text.split("## Twins predicted")[1]
    assert "SYNTHETIC" in text


def test_a_multi_label_zoo_records_micro_f1_and_map_per_epoch_and_per_form(tmp_path):
    from ground.datasets.patches import PatchSet

    single = generate_patches(15, size=32, bands=("B02", "B03", "B04", "B08"), seed=1)
    y = np.eye(len(single.classes), dtype=np.uint8)[single.y]
    y[np.random.default_rng(0).random(len(single)) < 0.3, 0] = 1  # a second label on some patches
    data = PatchSet(single.x, y, single.bands, single.classes, "synthetic-multi-label").save(tmp_path / "ml.npz")
    (tmp_path / "grid.toml").write_text('name = "ml"\narchitectures = ["cnn-s"]\nseeds = [0]\n[hyper]\nepochs = [2]\n'
                                        '[twins]\nmethods = ["variational-dropout"]\nepochs = 1\n')
    result = orbitlite("ground", "zoo", "run", str(tmp_path / "grid.toml"), "--data", str(data), "--out", str(tmp_path / "z"))
    assert result.returncode == 0, result.stderr
    (member,) = [p for p in (tmp_path / "z" / "members").iterdir() if not p.name.startswith(".")]
    metrics = json.loads((member / "metrics.json").read_text())
    assert all({"val_micro_f1", "val_mAP"} <= set(e) for e in metrics["epochs"])
    assert [f["form"] for f in metrics["forms"]] == ["dense", "vd"]
    for f in metrics["forms"]:
        assert f["metric"] == "micro F1" and {"micro_f1", "macro_f1", "mAP"} == set(f["metrics"])
    from ground.zoo.index import load_zoo

    assert {r["task"] for r in load_zoo(tmp_path / "z", say=pytest.fail).table.to_pylist()} == {"multi-label"}
