"""The NAS database (ground/nas): NAS-Bench-101's hashes and count of cells, seeded sampling, a
tiny database trained through the local backend and the CLI, NAS-Bench-101-style queries and
their refusals, and the landscape measures on landscapes whose answers are known."""

from __future__ import annotations

import itertools
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from scipy import stats

from ground.errors import CellNotFoundError, InvalidCellError, NasError
from ground.nas import landscape as fla
from ground.nas.database import NasDatabase
from ground.nas.records import read_record, read_setup
from ground.nas.sample import sample, uniform_cell
from ground.nas.space import (as_cell, cell_hash, count_cells, edit_distance, full_dag_masks, matrix_of, neighbours,
                              parse_ops, representations)
from models.nas_space import CONV1X1, CONV3X3, EXAMPLE_MATRIX, EXAMPLE_OPS, INPUT, MAXPOOL3X3, OPS, OUTPUT, Cell
from tests.conftest import assert_one_line_error, orbitlite

EXAMPLE = as_cell(EXAMPLE_MATRIX, EXAMPLE_OPS)


def permuted(cell: Cell, order: list[int]) -> tuple[np.ndarray, list[str]]:
    """`cell` with its vertices renumbered: vertex order[k] becomes vertex k."""
    m = np.asarray(cell.matrix)[np.ix_(order, order)]
    return m, [cell.ops[v] for v in order]


def topological_orders(cell: Cell) -> list[list[int]]:
    n = len(cell.ops)
    out = []
    for middle in itertools.permutations(range(1, n - 1)):
        order = [0, *middle, n - 1]
        if not np.tril(np.asarray(cell.matrix)[np.ix_(order, order)]).any():
            out.append(order)
    return out


# --- hashing and the space ----------------------------------------------------------------------

def test_hashes_are_nas_bench_101s():
    # The README example's hash as google-research/unified_functional_hashing's tests give it for
    # NAS-Bench-101 (nasbench/python/evaluator_test.py), and the input->output cell's.
    assert cell_hash(EXAMPLE) == "28cfc7874f6d200472e1a9dcd8650aa0"
    assert cell_hash(as_cell([[0, 1], [0, 0]], [INPUT, OUTPUT])) == "043721b9c7fe8c5fad811d47d83132ec"


def test_isomorphic_spellings_share_a_hash_and_others_do_not():
    rng = np.random.default_rng(0)
    for cell in [EXAMPLE, *(uniform_cell(rng) for _ in range(20))]:
        orders = topological_orders(cell)
        spellings = {cell_hash(as_cell(*permuted(cell, o))) for o in orders}
        assert spellings == {cell_hash(cell)}
        distinct = {permuted(cell, o)[0].tobytes() + str(permuted(cell, o)[1]).encode() for o in orders}
        assert len(distinct) == representations(cell)
    # An unpruned spelling too: a vertex off every input-output path is dropped before hashing.
    small = as_cell([[0, 1, 1], [0, 0, 1], [0, 0, 0]], [INPUT, CONV3X3, OUTPUT])
    dangling = [[0, 1, 1, 1], [0, 0, 0, 1], [0, 0, 0, 0], [0, 0, 0, 0]]  # vertex 2 feeds nothing
    assert cell_hash(as_cell(dangling, [INPUT, CONV3X3, MAXPOOL3X3, OUTPUT])) == cell_hash(small)


@pytest.mark.parametrize("vertices", [2, 3, 4, 5])
def test_every_spelling_hashes_to_one_of_exactly_the_counted_cells(vertices):
    hashes = Counter()
    for mask in full_dag_masks(vertices):
        m = matrix_of(int(mask), vertices)
        for ops in itertools.product(OPS, repeat=vertices - 2):
            cell = Cell(tuple(map(tuple, m.tolist())), (INPUT, *ops, OUTPUT))
            hashes[cell_hash(cell)] += 1
    assert len(hashes) == count_cells(vertices) == {2: 1, 3: 6, 4: 84, 5: 2441}[vertices]


def test_the_space_holds_nas_bench_101s_423624_cells():
    assert count_cells() == 423_624


def test_bad_cells_are_refused_in_one_line():
    with pytest.raises(InvalidCellError, match="no path from input to output"):
        as_cell([[0, 1, 0], [0, 0, 0], [0, 0, 0]], [INPUT, CONV3X3, OUTPUT])
    with pytest.raises(InvalidCellError, match="21 edges; NAS-Bench-101 allows at most 9"):
        as_cell(np.triu(np.ones((7, 7), int), 1), EXAMPLE_OPS)
    with pytest.raises(InvalidCellError, match="unknown op 'conv5x5'"):
        parse_ops("input,conv5x5,output")
    assert parse_ops("input,conv3x3,conv1x1,maxpool,output") == (INPUT, CONV3X3, CONV1X1, MAXPOOL3X3, OUTPUT)


def test_neighbours_are_one_edit_away_and_edit_distance_is_a_distance():
    rng = np.random.default_rng(1)
    cells = [EXAMPLE, *(uniform_cell(rng) for _ in range(10))]
    for cell in cells:
        near = neighbours(cell)
        assert near and cell_hash(cell) not in {cell_hash(n) for n in near}
        assert len({cell_hash(n) for n in near}) == len(near)
        for n in near:
            # An op changed or an edge flipped keeps the vertices; a removed edge can prune some,
            # an added vertex brings its two edges.
            assert edit_distance(cell, n) == 1 if len(n.ops) == len(cell.ops) else edit_distance(cell, n) > 1
        spelling = as_cell(*permuted(cell, topological_orders(cell)[-1]))
        assert edit_distance(cell, spelling) == 0
    a, b, c = cells[1:4]
    assert edit_distance(a, b) == edit_distance(b, a)
    assert edit_distance(a, c) <= edit_distance(a, b) + edit_distance(b, c)


# --- sampling -----------------------------------------------------------------------------------

@pytest.mark.parametrize("method", ["uniform", "lhs", "walk"])
def test_sampling_is_seeded_valid_and_distinct(method):
    a = sample(method, 40, seed=3, length=5)
    assert a == sample(method, 40, seed=3, length=5)
    assert a != sample(method, 40, seed=4, length=5)
    hashes = [cell_hash(c) for c in a]
    assert len(set(hashes)) == 40
    for c in a:
        assert as_cell(c.matrix, c.ops) == c  # valid, and already pruned
        assert len(c.ops) <= 7 and np.sum(c.matrix) <= 9
    more = sample(method, 10, seed=3, length=5, exclude=set(hashes))
    assert not {cell_hash(c) for c in more} & set(hashes)


def test_walks_step_from_neighbour_to_neighbour():
    from ground.nas.sample import _walks

    draw = _walks(np.random.default_rng(5), 6)
    cells = [draw() for _ in range(12)]
    for walk in (cells[:6], cells[6:]):
        for here, there in zip(walk, walk[1:]):
            assert cell_hash(there) in {cell_hash(n) for n in neighbours(here)}


def test_uniform_sampling_is_uniform_over_cells():
    rng = np.random.default_rng(7)
    # Among the 84 cells of 4 vertices, whatever their number of spellings (1 to 2)...
    draws = Counter(cell_hash(uniform_cell(rng, (4,))) for _ in range(4200))
    assert len(draws) == 84
    assert stats.chisquare(list(draws.values())).pvalue > 1e-3
    # ...and across sizes: 359,082 of the 423,624 cells have 7 vertices.
    sizes = Counter(len(uniform_cell(rng).ops) for _ in range(1500))
    assert abs(sizes[7] / 1500 - 359_082 / 423_624) < 0.03


# --- a tiny database, trained through the CLI and the local backend --------------------------

@pytest.fixture(scope="module")
def tiny_db(tmp_path_factory) -> Path:
    from ground.datasets.synthetic import generate_patches

    d = tmp_path_factory.mktemp("nas")
    generate_patches(12, size=16, bands=("B02", "B03", "B04"), seed=0).save(d / "tiny.npz")
    done = orbitlite("ground", "nas", "sample", "--out", str(d / "db"), "--n", "2", "--method", "walk", "--length", "2",
                     "--seed", "2")
    assert done.returncode == 0, done.stderr
    done = orbitlite("ground", "nas", "train", str(d / "db"), "--data", str(d / "tiny.npz"), "--budgets", "1,2",
                     "--repeats", "2", "--latency-runs", "5", "--backend", "local")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "2 cells trained, 0 failed" in done.stdout
    return d / "db"


def test_each_cell_is_trained_once_into_its_folder_and_indexed(tiny_db):
    setup = read_setup(tiny_db)
    planned = json.loads((tiny_db / "cells.json").read_text())["cells"]
    for cell in planned:
        record = read_record(tiny_db / "cells" / cell["hash"])
        assert record.hash == cell["hash"] and record.parameters > 0 and record.flops > 2 * record.parameters
        assert sorted((r.budget, r.repeat) for r in record.runs) == [(1, 0), (1, 1), (2, 0), (2, 1)]
        snapshots = {(r.budget, r.repeat): r.training_time for r in record.runs}
        assert snapshots[2, 0] >= snapshots[1, 0] > 0  # time so far: a budget's snapshot follows the smaller's
        assert (tiny_db / "cells" / cell["hash"] / "cell.tflite").stat().st_size == record.int8.size_bytes
        assert record.int8.latency_p50_us > 0
    table = pq.read_table(tiny_db / "index.parquet")
    assert table.num_rows == 2 * 2 * 2 and set(table.column("hash").to_pylist()) == {c["hash"] for c in planned}
    assert setup.budgets == (1, 2) and setup.budgets_as == "snapshots" and setup.data.source.startswith("synthetic")
    again = orbitlite("ground", "nas", "train", str(tiny_db))  # resumes with the stored setup
    assert again.returncode == 0 and "2 of 2 already done, skipped" in again.stdout


def test_queries_answer_like_nas_bench_101(tiny_db):
    db = NasDatabase(tiny_db, seed=0)
    assert len(db) == 2 and db.valid_epochs == (1, 2)
    key = next(db.hash_iterator())
    fixed, computed = db.get_metrics_from_hash(key)
    cell = Cell(tuple(map(tuple, fixed["module_adjacency"].tolist())), tuple(fixed["module_operations"]))
    assert db.get_budget_counters() == (0.0, 0)  # looking at every repeat counts nothing
    spelling = permuted(cell, topological_orders(cell)[-1])  # an isomorphic spelling is the same cell
    answers = [db.query(spelling, epochs=1) for _ in range(12)]
    assert {a["repeat"] for a in answers} == {0, 1}  # one repeat sampled each time
    for a in answers:
        assert a["test_accuracy"] == computed[1][a["repeat"]]["test_accuracy"]
        assert a["trainable_parameters"] == fixed["trainable_parameters"]
    seconds, epochs = db.get_budget_counters()
    assert epochs == 12 and seconds == pytest.approx(sum(a["training_time"] for a in answers))
    assert db.query(cell)["epochs"] == 2  # the largest budget by default
    db.reset_budget_counters()
    assert db.get_budget_counters() == (0.0, 0)
    again = NasDatabase(tiny_db, seed=0)  # the same seed samples the same repeats
    assert [again.query(cell, 1)["repeat"] for _ in range(12)] == [a["repeat"] for a in answers]
    assert db.is_valid(spelling) and cell in db and spelling in db


def test_queries_refuse_what_the_database_cannot_answer(tiny_db):
    db = NasDatabase(tiny_db)
    with pytest.raises(InvalidCellError, match="no path from input to output"):
        db.query(([[0, 1, 0], [0, 0, 0], [0, 0, 0]], [INPUT, CONV3X3, OUTPUT]), 1)
    assert not db.is_valid(([[0, 1, 0], [0, 0, 0], [0, 0, 0]], [INPUT, CONV3X3, OUTPUT]))
    assert not db.is_valid("not a cell")
    absent = next(c for c in sample("uniform", 5, seed=11) if c not in db)
    assert db.is_valid(absent)
    with pytest.raises(CellNotFoundError, match="is not in the NAS database"):
        db.query(absent, 1)
    fixed = next(iter(db.fixed_statistics.values()))
    with pytest.raises(CellNotFoundError, match="trained for 1, 2 epochs"):
        db.query((fixed["module_adjacency"], fixed["module_operations"]), 4)
    with pytest.raises(NasError, match="not found"):
        NasDatabase(tiny_db.parent / "nowhere")
    assert db.get_budget_counters() == (0.0, 0)


def test_a_missing_index_is_rebuilt_from_the_cell_folders(tiny_db, tmp_path):
    import shutil

    copy = tmp_path / "db"
    shutil.copytree(tiny_db, copy)
    (copy / "index.parquet").unlink()
    assert len(NasDatabase(copy)) == 2 and (copy / "index.parquet").exists()
    # A cell folder whose record no longer reads is left out, said once, and not rebuilt again and again.
    broken = sorted((copy / "cells").glob("[0-9a-f]*"))[0]
    (broken / "record.json").write_text('{"schema": "orbitlite/nas-cell", "version": 1, "hash": 7}')
    done = orbitlite("ground", "nas", "index", str(copy))
    assert done.returncode == 0 and "1 cells ->" in done.stdout
    assert f"left out: {broken / 'record.json'} is malformed: hash: Expected `str`" in done.stderr
    built = (copy / "index.parquet").stat().st_mtime_ns
    assert len(NasDatabase(copy)) == 1 and (copy / "index.parquet").stat().st_mtime_ns == built


def test_the_cli_queries_and_refuses_in_one_line(tiny_db, tmp_path):
    cell = json.loads((tiny_db / "cells.json").read_text())["cells"][0]
    matrix, ops = json.dumps(cell["matrix"]), ",".join(cell["ops"])
    done = orbitlite("ground", "nas", "query", str(tiny_db), "--matrix", matrix, "--ops", ops, "--epochs", "1")
    assert done.returncode == 0, done.stderr
    assert cell["hash"] in done.stdout and "(sampled)" in done.stdout and "budget spent" in done.stdout
    bad = [
        (["query", str(tiny_db), "--matrix", "[[0,1,0],[0,0,0],[0,0,0]]", "--ops", "input,conv3x3,output"],
         "no path from input to output"),
        (["query", str(tiny_db), "--matrix", "[[0,1],[0,0]]", "--ops", "input,output"], "is not in the NAS database"),
        (["query", str(tmp_path / "none"), "--matrix", "[[0,1],[0,0]]", "--ops", "input,output"], "not found"),
        (["query", str(tiny_db), "--matrix", "[[0,1],[0,0]", "--ops", "input,output"], "--matrix: not valid JSON"),
        (["query", str(tiny_db), "--matrix", matrix, "--ops", ops, "--epochs", "3"], "trained for 1, 2 epochs"),
        (["train", str(tiny_db), "--budgets", "1,3"], "--budgets 1,3 (set up with 1,2)"),
        (["train", str(tmp_path / "empty"), "--data", "x.npz"], "lists no cells to train"),
        (["landscape", str(tmp_path / "none")], "not found"),
    ]
    forged = tmp_path / "forged"
    forged.mkdir()
    (forged / "cells.json").write_text(json.dumps({"schema": "orbitlite/nas-cells", "version": 1, "cells": [
        {**cell, "hash": "0" * 32}]}))
    bad.append((["train", str(forged), "--data", "x.npz"], f"cells[0]: hash {'0' * 32} is not the cell's"))
    for args, fragment in bad:
        assert_one_line_error(orbitlite("ground", "nas", *args), fragment)
    usage = orbitlite("ground", "nas", "train", str(tiny_db), "--budgets", "2,1")
    assert usage.returncode == 2 and "increasing" in usage.stderr


def test_landscape_report_on_the_tiny_database(tiny_db, tmp_path):
    done = orbitlite("ground", "nas", "landscape", str(tiny_db), "--out", str(tmp_path / "land"))
    assert done.returncode == 0, done.stderr
    report = (tmp_path / "land" / "landscape.md").read_text()
    assert "1 neighbour pair found among 2 cells" in report  # the walk's two cells, one next to the other
    assert "SYNTHETIC" in report and "0.517" in report and "0.572" in report
    for png in ("fitness-histogram.png", "fitness-distance.png", "autocorrelation.png"):
        assert (tmp_path / "land" / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_snapshots_are_the_separate_runs_under_a_constant_rate(tiny_db):
    """The cheap budget mapping is exact: the model a run has after b epochs is the model of a
    separate run of b epochs (same seed, same data order, deterministic ops)."""
    from ground.datasets.patches import load_patches
    from ground.nas.cell_job import _train
    from ground.pipeline.steps import split

    setup = read_setup(tiny_db)
    patches = load_patches(Path(setup.data.path))
    parts = split(patches, setup.split_seed)
    cell = as_cell(EXAMPLE_MATRIX, EXAMPLE_OPS)
    snap = _train(cell, setup, patches, parts, 0)
    separate = _train(cell, type(setup)(**{**{f: getattr(setup, f) for f in setup.__struct_fields__},
                                           "budgets_as": "separate"}), patches, parts, 0)
    for (a, (ma, _)), (b, (mb, _)) in zip(snap, separate):
        assert (a.train_accuracy, a.validation_accuracy, a.test_accuracy) == \
            (b.train_accuracy, b.validation_accuracy, b.test_accuracy)
    for wa, wb in zip(snap[-1][1][0].get_weights(), separate[-1][1][0].get_weights()):
        np.testing.assert_array_equal(wa, wb)


def test_flops_count_two_per_multiply_accumulate_and_a_little_more():
    import ground  # noqa: F401
    from ground.nas.cell_job import count_flops
    from ground.tf import keras
    from models.nas_cell import NasCellConfig, build_nas_cell

    model = build_nas_cell((16, 16, 3), 6, NasCellConfig())
    macs = 0
    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv2D):
            h, w, c = layer.output.shape[1:]
            macs += h * w * c * layer.kernel_size[0] * layer.kernel_size[1] * layer.input.shape[-1]
        elif isinstance(layer, keras.layers.Dense):
            macs += layer.input.shape[-1] * layer.units
    assert 2 * macs <= count_flops(model) <= 2.1 * macs


def test_the_database_splits_patches_as_every_ground_step():
    from ground.nas.train import SPLIT
    from ground.training.train import SPLIT as GROUND_SPLIT

    assert SPLIT == GROUND_SPLIT


# --- landscape measures on landscapes with known answers ----------------------------------------

def hypercube(n: int) -> tuple[np.ndarray, list[np.ndarray]]:
    """The points of {0,1}^n (as integers) and their neighbours one bit away."""
    points = np.arange(1 << n)
    return points, [points[i] ^ (1 << np.arange(n)) for i in points]


def test_a_landscape_sloping_to_one_point_has_fdc_minus_one_and_one_optimum():
    n, target = 10, 0b1011001110
    points, near = hypercube(n)
    distance = np.bitwise_count(points ^ target).astype(np.float64)
    fitness = -distance
    rng = np.random.default_rng(0)
    assert fla.fitness_distance_correlation(fitness, distance) == pytest.approx(-1.0)
    optima, starts, exact = fla.local_optima(fitness, near, 200, rng)
    assert optima == {target} and starts == 200 and exact == 1
    # A random walk on the hypercube sees a linear fitness with ACF(s) = (1 - 2/n)^s.
    walks = fla.random_walks(near, 200, 100, rng)
    acf = fla.autocorrelation(fitness, walks, 3)
    assert acf[0] == pytest.approx(1.0)
    assert acf[1] == pytest.approx(1 - 2 / n, abs=0.03) and acf[2] == pytest.approx((1 - 2 / n) ** 2, abs=0.05)
    assert fla.correlation_length(acf[1]) == pytest.approx(-1 / np.log(1 - 2 / n), rel=0.2)


def test_a_random_landscape_has_no_autocorrelation_and_many_optima():
    n = 10
    points, near = hypercube(n)
    rng = np.random.default_rng(1)
    fitness = rng.random(len(points))
    acf = fla.autocorrelation(fitness, fla.random_walks(near, 30, 100, rng), 2)
    assert abs(acf[1]) < 0.1
    _, _, exact = fla.local_optima(fitness, near, 200, rng)
    assert 60 <= exact <= 130  # a random point beats its n neighbours with probability 1/(n+1): 93 expected
    assert np.isnan(fla.correlation_length(-0.2))


def test_persistence_and_neutrality():
    f = np.arange(20.0)
    assert fla.persistence(f, f) == 1.0 and fla.persistence(f, -f) == 0.0
    points, near = hypercube(4)
    assert fla.neutrality(np.zeros(16), near, 0.0) == 1.0
    assert fla.neutrality(np.bitwise_count(points).astype(float), near, 0.5) == 0.0


def test_a_cell_landscape_sloping_to_one_cell():
    cells = sample("walk", 30, seed=9, length=10)
    target = cells[4]
    hashes = [cell_hash(c) for c in cells]
    index = {h: i for i, h in enumerate(hashes)}
    links = [set() for _ in cells]
    for i, c in enumerate(cells):
        for other in neighbours(c):
            j = index.get(cell_hash(other))
            if j is not None:
                links[i].add(j)
                links[j].add(i)
    fitness = -np.array([edit_distance(c, target) for c in cells], np.float64)
    land = fla.CellLandscape(hashes=hashes, cells=cells, fitness=fitness, repeats=np.stack([fitness, fitness], 1),
                             by_budget={4: fitness}, neighbours=[np.array(sorted(s)) for s in links], epochs=4,
                             metric="test", evaluated=100)
    a = fla.analyse(land, walks=30, steps=100, starts=200, seed=0)
    assert a.best == 4 and a.fdc == pytest.approx(-1.0)
    assert a.connected == 30 and len(a.walks) == 30 and a.steps == 100 and a.starts == 30
    assert np.isfinite(a.acf[1]) and a.acf[1] > 0.3  # a smooth slope is strongly correlated step to step
    assert a.seed_noise == 0 and a.repeat_correlation == pytest.approx(1.0)  # repeats that agree exactly


def test_board_latency_is_measured_by_hil_bench_and_answered_by_queries(tiny_db, tmp_path):
    import shutil

    copy = tmp_path / "db"
    shutil.copytree(tiny_db, copy)
    done = orbitlite("ground", "nas", "bench", str(copy), "--board", "local", "--min-runs", "5")
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "2 cells benched on local, 0 kept from before (2 trained)"
    db = NasDatabase(copy, seed=0)
    for key in db.hash_iterator():
        fixed, _ = db.get_metrics_from_hash(key)
        assert set(fixed["board_latency_us"]) == {"local"} and fixed["board_latency_us"]["local"] > 0
    assert db.query((fixed["module_adjacency"], fixed["module_operations"]))["board_latency_us"] == fixed["board_latency_us"]
    again = orbitlite("ground", "nas", "bench", str(copy), "--board", "local")
    assert again.stdout.strip() == "0 cells benched on local, 2 kept from before (2 trained)"
    cell = json.loads((copy / "cells.json").read_text())["cells"][0]
    shown = orbitlite("ground", "nas", "query", str(copy), "--matrix", json.dumps(cell["matrix"]), "--ops",
                      ",".join(cell["ops"]))
    assert "on board local: " in shown.stdout, shown.stderr
    result = copy / "cells" / cell["hash"] / "bench-local" / "result.json"
    result.write_text(result.read_text().replace('"sha256": "', '"sha256": "0', 1)[:-3])
    with pytest.raises(NasError, match="bench result .*result.json"):
        NasDatabase(copy)
    assert_one_line_error(orbitlite("ground", "nas", "bench", str(tmp_path / "none"), "--board", "local"),
                          "is not a trained NAS database")
