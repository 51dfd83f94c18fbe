"""NAS cells trained per hour at the smallest NAS-Bench-101 budget (4 epochs, one repeat) on this
machine: uniformly sampled cells, each a job of the local backend (as many at once as the machine
has cores, one TensorFlow thread each), on 600 SYNTHETIC 32 x 32 x 4 patches (420 to train),
including what every cell's job does besides training: TensorFlow's start, the int8 conversion
and its evaluation with 100 timed invokes. `make bench` alone (minutes); tests/test_nas.py trains
a tiny database through the same path under `make test`."""

from __future__ import annotations

import pytest

from ground.cluster import Limits
from ground.datasets.synthetic import generate_patches
from ground.nas.records import add_cells, read_record
from ground.nas.sample import sample
from ground.nas.space import cell_hash
from ground.nas.train import resolve_setup, train_database

pytestmark = pytest.mark.bench_only
CELLS = 6


def test_bench_nas_cells_per_hour(benchmark, tmp_path):
    generate_patches(100, size=32, bands=("B02", "B03", "B04", "B08"), seed=0).save(tmp_path / "patches.npz")
    db = tmp_path / "db"
    cells = sample("uniform", CELLS, seed=0)
    add_cells(db, cells, "uniform", 0)
    setup, new = resolve_setup(db, tmp_path / "patches.npz", {"budgets": (4,), "repeats": 1})
    ended = benchmark.pedantic(train_database, args=(db, setup, new, "local", Limits(time_min=30), lambda line: None),
                               rounds=1, iterations=1)
    seconds = benchmark.stats.stats.total
    assert set(ended.values()) == {"done"} and len(ended) == CELLS
    records = [read_record(db / "cells" / cell_hash(c)) for c in cells]
    training = sum(r.runs[0].training_time for r in records)
    per_hour = CELLS / seconds * 3600
    benchmark.extra_info.update(cells=CELLS, seconds=round(seconds, 1), cells_per_hour=round(per_hour, 1),
                                training_share=round(training / sum(r.seconds for r in records), 3))
    print(f"\n{CELLS} NAS cells at 4 epochs in {seconds:.0f} s: {per_hour:.0f} cells/hour on this machine; "
          f"training is {training / sum(r.seconds for r in records):.0%} of each job's time")
    assert per_hour > 0
