"""Training one cell of a NAS database: the work of one `ground.cluster` job, run in its own
process (local) or SLURM task, writing the cell's folder.

For each repeat r (seed = setup.seed + r, the same data split for every cell), the cell's network
is trained as `ground train` trains (`ground.training.train.fit`: its objective, label smoothing,
optimizer) and measured at each budget: top-1 accuracy (micro F1 for multi-label sets) on the
training, validation and test splits, in inference mode, and the seconds of training so far.

- `snapshots` (the default): one run to the largest budget, measured at the end of each budget's
  epoch. Under the constant learning rate ground training uses, a run stopped after b epochs is the
  first b epochs of a longer one (same seed, same data order, deterministic ops), so a snapshot
  *is* the separate run of b epochs, at the cost of the largest budget instead of their sum.
- `separate`: a fresh run per budget and repeat, as NAS-Bench-101 trains, here with the learning
  rate decayed to zero along a cosine over the run's steps (NAS-Bench-101's schedule).

The largest budget's first repeat is then converted to full-integer int8 TFLite and evaluated
(`ground.conversion`: Keras and TFLite test accuracy through the on-board runtime, host latency in
LiteRT at batch 1 on one thread). FLOPs are TensorFlow's profiler count (`float_operation`) of the
frozen inference graph at batch 1: two per multiply-accumulate of every convolution and dense
layer, plus the batch-norm, bias, pooling and addition operations."""

from __future__ import annotations

import dataclasses
import math
import os
import time
from pathlib import Path

from ground.tf import keras, quiet_stderr, tf
from ground.conversion.convert import write_tflite
from ground.conversion.evaluate import evaluate, evaluation_path
from ground.conversion.metrics import top1_accuracy
from ground.datasets.patches import MULTI_LABEL, PatchSet, load_patches
from ground.errors import NasError
from ground.nas.records import CellRecord, Int8, Run, Setup, read_setup, setup_sha256, write_record
from ground.nas.space import as_cell, cell_hash
from ground.pipeline.steps import new_model, split
from ground.training.train import TrainConfig, fit, predict
from models.nas_space import Cell
from onboard.files import sha256_file

MODEL = "cell.tflite"


def train_cell(matrix: tuple, ops: tuple, db: str, part: Path) -> None:
    """The job: train the cell (`matrix`, `ops`) under `db`'s setup and write its record and int8
    model into `part`."""
    started = time.perf_counter()
    setup = read_setup(Path(db))
    if setup is None:
        raise NasError(f"{db} holds no setup.json: run `orbitlite ground nas train` on it")
    _threads(setup.threads)
    cell = as_cell(matrix, ops)
    patches = _patches(setup)
    parts = split(patches, setup.split_seed)
    runs, model, record = [], None, None
    for repeat in range(setup.repeats):
        trained = _train(cell, setup, patches, parts, repeat)
        runs += [run for run, _ in trained]
        if repeat == 0:
            model, record = trained[-1][1]
    int8 = _int8(model, record, parts, cell, setup, part)
    write_record(part, CellRecord(
        hash=cell_hash(cell), matrix=cell.matrix, ops=cell.ops, setup_sha256=setup_sha256(setup),
        metric="micro F1" if patches.task == MULTI_LABEL else "top-1 accuracy",
        parameters=int(model.count_params()), flops=count_flops(model), budgets=setup.budgets, repeats=setup.repeats,
        runs=tuple(runs), int8=int8, host=os.uname().nodename, tensorflow=tf.__version__,
        seconds=round(time.perf_counter() - started, 3)))


def _threads(n: int) -> None:
    try:
        tf.config.threading.set_intra_op_parallelism_threads(n)
        tf.config.threading.set_inter_op_parallelism_threads(n)
    except RuntimeError:  # TensorFlow already ran something in this process: keep its setting
        pass


def _patches(setup: Setup) -> PatchSet:
    path = Path(setup.data.path)
    if not path.is_file() or sha256_file(path) != setup.data.sha256:
        raise NasError(f"{path} is not the patch set the database was set up with (sha256 {setup.data.sha256[:12]}…)")
    return load_patches(path)


def _overrides(cell: Cell, setup: Setup) -> dict:
    return {"matrix": cell.matrix, "ops": cell.ops, "stem": setup.stem, "stacks": setup.stacks,
            "cells_per_stack": setup.cells_per_stack}


class Budgets(keras.callbacks.Callback):
    """Measures the model at the end of each budget's epoch, and the training seconds so far
    (the measuring itself not counted)."""

    def __init__(self, budgets: tuple[int, ...], measure) -> None:
        super().__init__()
        self.budgets, self.measure = set(budgets), measure
        self.seconds, self.results = 0.0, {}

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self.started = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        self.seconds += time.perf_counter() - self.started
        if epoch + 1 in self.budgets:
            self.results[epoch + 1] = (self.measure(self.model), self.seconds)


class CosineDecay(keras.callbacks.Callback):
    """The learning rate along a cosine from its start to zero over the run's steps (per step)."""

    def __init__(self, start: float, steps: int) -> None:
        super().__init__()
        self.start, self.steps, self.step = start, max(1, steps), 0

    def on_train_batch_begin(self, batch: int, logs: dict | None = None) -> None:
        rate = 0.5 * self.start * (1 + math.cos(math.pi * min(self.step, self.steps) / self.steps))
        keras.backend.set_value(self.model.optimizer.learning_rate, rate)
        self.step += 1


def _train(cell: Cell, setup: Setup, patches: PatchSet, parts: tuple[PatchSet, PatchSet, PatchSet],
           repeat: int) -> list[tuple[Run, tuple]]:
    """The runs of one repeat, one per budget, each with the model and record it measured."""
    train, val, test = parts
    seed = setup.seed + repeat
    config = TrainConfig(epochs=max(setup.budgets), batch_size=setup.batch_size, optimizer=setup.optimizer,
                         learning_rate=setup.learning_rate, seed=seed)

    def measure(model) -> tuple[float, float, float]:
        return tuple(round(top1_accuracy(predict(model, record, p), p), 6) for p in (train, val, test))

    if setup.budgets_as == "snapshots":
        model, record = new_model(patches, "nas-cell", _overrides(cell, setup), seed, setup.split_seed)
        budgets = Budgets(setup.budgets, measure)
        fit(model, record, train, val, config, stage=f"nas-r{repeat}", callbacks=[budgets])
        plan = [(b, budgets.results[b], (model, record)) for b in setup.budgets]
    else:
        plan = []
        for b in setup.budgets:
            model, record = new_model(patches, "nas-cell", _overrides(cell, setup), seed, setup.split_seed)
            budgets = Budgets((b,), measure)
            schedule = [CosineDecay(setup.learning_rate, b * -(-len(train) // setup.batch_size))] \
                if setup.schedule == "cosine" else []
            fit(model, record, train, val, dataclasses.replace(config, epochs=b), stage=f"nas-b{b}-r{repeat}",
                callbacks=[budgets, *schedule])
            plan.append((b, budgets.results[b], (model, record)))
    return [(Run(budget=b, repeat=repeat, seed=seed, train_accuracy=acc[0], validation_accuracy=acc[1],
                 test_accuracy=acc[2], training_time=round(seconds, 3)), trained)
            for b, (acc, seconds), trained in plan]


def _int8(model, record, parts, cell: Cell, setup: Setup, part: Path) -> Int8:
    train, _, test = parts
    out = part / MODEL
    manifest = write_tflite(model, record, train, test, out, model_id=f"nas-{cell_hash(cell)}", profile="int8")
    ev = evaluate(out, test, "test", runs=setup.latency_runs)
    ev.write(evaluation_path(out))
    return Int8(budget=max(setup.budgets), repeat=0, size_bytes=manifest.size_bytes,
                keras_test_accuracy=manifest.accuracy.keras, tflite_test_accuracy=manifest.accuracy.tflite,
                agreement=manifest.accuracy.agreement, latency_avg_us=ev.latency["avg_us"],
                latency_p50_us=ev.latency["p50_us"], latency_p90_us=ev.latency["p90_us"],
                interpreter=str(ev.latency["interpreter"]))


def count_flops(model: keras.Model) -> int:
    """TensorFlow's profiler count of float operations of `model`'s inference graph at batch 1."""
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    spec = tf.TensorSpec([1, *model.input_shape[1:]], tf.float32)
    frozen = convert_variables_to_constants_v2(tf.function(lambda x: model(x, training=False)).get_concrete_function(spec))
    options = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
    options["output"] = "none"
    with quiet_stderr():
        return int(tf.compat.v1.profiler.profile(graph=frozen.graph, options=options).total_float_ops)


__all__ = ["MODEL", "count_flops", "train_cell"]
