"""Training one zoo member into its folder: the dense model with its checkpoints, its sparsified
twins, and the metrics of every form, as the model-zoo datasets lay a member out.

A member's folder (written as `KEY.part` and published whole by ground.cluster.jobs):
- `params.json`: the member (its point of the grid) and the dataset it was trained on;
- `checkpoint_<epoch>.npz`: the dense weights at each kept epoch, `<layer>/<weight>` keys, for a
  population study that loads them without TensorFlow;
- `dense.keras` (and its record), the trained dense model, for transfer (`ground train --init-from`);
- `<form>.npz` and `<form>.tflite` (with its manifest) for the dense model and each twin: forms
  `dense`, `magnitude-S` (tfmot magnitude pruning to sparsity S), `vd` (variational dropout
  pruned where log alpha >= the grid's threshold) and `vd-S` (the same twin pruned by log alpha
  to sparsity S, for comparison at equal sparsity);
- `metrics.json`: per epoch (loss, accuracy, their validation figures; micro F1 and mAP for a
  multi-label set) and per form (sparsity, Keras and int8 test metric, their agreement, int8 size
  raw and gzipped, host latency at batch 1)."""

from __future__ import annotations

import copy
import gzip
import time
from pathlib import Path
from typing import Any

import numpy as np

from ground.tf import keras, tf
from ground.conversion.convert import write_tflite
from ground.conversion.evaluate import evaluate
from ground.conversion.metrics import mean_average_precision, multilabel_f1
from ground.datasets.patches import MULTI_LABEL, PatchSet, load_patches
from ground.pipeline.steps import new_model, save_keras, split
from ground.training import variational_dropout as vd
from ground.training.prune import PruneSpec, measured_sparsity, prune
from ground.training.record import ModelRecord
from ground.training.train import TrainConfig, fit, normalize
from ground.zoo.grid import Member
from onboard.files import write_verified
from onboard.schema import encode_json, to_builtins


def train_member(member: Member, data: str, part: Path) -> None:
    """The whole member, into the folder `part` (a job's work: see ground.cluster.jobs)."""
    _limit_threads(member.limits.cpus)
    patches = load_patches(Path(data))
    train, val, test = split(patches, member.split_seed)
    write_verified(part / "params.json", encode_json(to_builtins(
        {"member": member, "data": {"path": str(data), "source": patches.source, "patches": len(patches),
                                    "task": patches.task}}), indent=2) + b"\n")
    model, record = new_model(patches, member.architecture, member.overrides, member.seed, member.split_seed)
    t = member.train
    config = TrainConfig(t.epochs, t.batch_size, t.optimizer, t.learning_rate, t.weight_decay, member.seed)
    checkpoints = Checkpoints(part, set(member.checkpoints), member.restart_epoch)
    extra = [ValidationMetrics(val, record)] if patches.task == MULTI_LABEL else []
    started = time.perf_counter()
    entry = fit(model, record, train, val, config, stage="train", callbacks=[*extra, checkpoints])
    train_seconds = time.perf_counter() - started
    save_keras(model, record, part / "dense.keras")
    forms = [_form("dense", model, record, 0.0, train=train, test=test, part=part)]
    for form in _twins(member, model, checkpoints.restart_weights, record, train, val, part):
        forms.append(_form(*form, train=train, test=test, part=part))
    write_verified(part / "metrics.json", encode_json(to_builtins(
        {"epochs": entry["epochs"], "train_seconds": round(train_seconds, 2), "forms": forms}), indent=2) + b"\n")


def _limit_threads(cpus: int) -> None:
    """The member's TensorFlow uses the CPUs it was given, no more (before TensorFlow's runtime starts)."""
    try:
        tf.config.threading.set_intra_op_parallelism_threads(cpus)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:  # already running in this process (a member trained in-process, as in tests)
        pass


def _twins(member: Member, model, restart_weights, record, train, val, part: Path):
    """(form name, model, record, target sparsity) of each twin, restarted from the checkpoint."""
    tw, t = member.twins, member.train
    config = TrainConfig(tw.epochs, t.batch_size, t.optimizer, tw.learning_rate, t.weight_decay, member.seed)

    def restarted():
        clone = keras.models.clone_model(model)
        clone.set_weights(restart_weights)
        return clone, copy.deepcopy(record)

    if "magnitude" in tw.methods:
        for sparsity in tw.sparsities:
            start, rec = restarted()
            pruned = prune(start, rec, train, val, PruneSpec("magnitude", sparsity, "polynomial"), config)
            yield f"magnitude-{sparsity:g}", pruned, rec, sparsity
    if "variational-dropout" in tw.methods:
        start, rec = restarted()
        twin = vd.sparsify(start, rec, train, val, config)
        alphas = list(vd.log_alphas(twin).values())
        np.savez_compressed(part / "vd-log-alpha.npz", **vd.log_alphas(twin))
        for name, threshold, target in [("vd", tw.vd_threshold, None),
                                        *[(f"vd-{s:g}", vd.threshold_for(alphas, s), s) for s in tw.sparsities]]:
            masked = vd.masked(start, twin, threshold)
            twin_record = copy.deepcopy(rec)
            twin_record.sparsity = round(measured_sparsity(masked), 4)
            yield name, masked, twin_record, target


def _form(name: str, model: keras.Model, record: ModelRecord, target: float | None, *, train: PatchSet,
          test: PatchSet, part: Path) -> dict[str, Any]:
    """Save the form's weights, convert it to int8 and measure it."""
    np.savez_compressed(part / f"{name}.npz", **weights_of(model))
    tflite = part / f"{name}.tflite"
    manifest = write_tflite(model, record, train, test, tflite, f"{part.name.removesuffix('.part')}-{name}")
    ev = evaluate(tflite, test, "test", runs=50)
    content = tflite.read_bytes()
    return {"form": name, "target_sparsity": target, "sparsity": round(measured_sparsity(model), 4),
            "metric": manifest.accuracy.metric, "keras": manifest.accuracy.keras, "int8": manifest.accuracy.tflite,
            "agreement": manifest.accuracy.agreement, "metrics": ev.metrics, "size_bytes": len(content),
            "size_gzip_bytes": len(gzip.compress(content, 9, mtime=0)), "latency_us": ev.latency["avg_us"],
            # a twin's own training, per epoch (the dense model's is the member's `epochs`)
            "epochs": record.history[-1]["epochs"] if name != "dense" else []}


def weights_of(model: keras.Model) -> dict[str, np.ndarray]:
    """Every weight of `model` by `<layer>/<weight>`, in the model's order."""
    return {w.name.removesuffix(":0"): w.numpy() for w in model.weights}


class Checkpoints(keras.callbacks.Callback):
    """The weights at each kept epoch into `checkpoint_<epoch>.npz`, and those at `restart` kept
    in memory for the twins."""

    def __init__(self, part: Path, epochs: set[int], restart: int) -> None:
        super().__init__()
        self.part, self.epochs, self.restart = part, epochs, restart
        self.restart_weights: list[np.ndarray] | None = None

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if epoch + 1 in self.epochs:
            np.savez_compressed(self.part / f"checkpoint_{epoch + 1}.npz", **weights_of(self.model))
        if epoch + 1 == self.restart:
            self.restart_weights = self.model.get_weights()


class ValidationMetrics(keras.callbacks.Callback):
    """A multi-label model's validation micro F1 and mAP after each epoch, in its log (its binary
    accuracy counts every absent label as a success, and says little)."""

    def __init__(self, val: PatchSet, record: ModelRecord) -> None:
        super().__init__()
        self.val, self.inputs = val, normalize(val.x, record)

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        scores = self.model.predict(self.inputs, batch_size=256, verbose=0)
        logs["val_micro_f1"] = multilabel_f1(self.val.y, scores)[0]
        logs["val_mAP"] = mean_average_precision(self.val.y, scores)
