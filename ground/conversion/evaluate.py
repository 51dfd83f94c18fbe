"""Evaluating a converted model on a labelled split: the task's metrics, agreement with its
Keras original, host latency through LiteRT, and a model card beside the manifest."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Annotated, Any

import numpy as np
from msgspec import Meta

from ground.conversion.metrics import (agreement, confusion, mean_average_precision, multilabel_f1, per_class_f1,
                            top1_accuracy)
from ground.datasets.patches import MULTI_LABEL, PatchSet
from ground.errors import EvaluationError
from onboard.contracts.bench import Rule
from onboard.inference.bench import benchmark
from onboard.files import write_verified
from onboard.contracts.manifest import Manifest, read_manifest, sidecar_path
from onboard.schema import Count, Finite, Name, NonNegative, Schema, Text, decode, encode_json, read_bounded


@dataclass
class Evaluation:
    model: str
    task: str
    dataset: str
    split: str
    samples: int
    metrics: dict[str, float]  # accuracy / macro F1 (single-label); micro F1, macro F1, mAP (multi-label)
    per_class_f1: dict[str, float]
    keras_agreement: float | None
    latency: dict[str, Any]  # benchmark_model-style figures at batch 1, one thread
    size_bytes: int
    sparsity: float
    confusion: list[list[int]] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def write(self, path: Path) -> Path:
        return write_verified(path, encode_json(asdict(self), indent=2) + b"\n")


def evaluation_path(model_path: Path) -> Path:
    return Path(f"{model_path}.eval.json")


def card_path(model_path: Path) -> Path:
    return Path(f"{model_path}.md")


class _Latency(Schema, forbid_unknown_fields=False):
    avg_us: NonNegative


class EvaluationFile(Schema, forbid_unknown_fields=False):
    """What `pareto` reads of an evaluation file (see `Evaluation`)."""

    model: Text
    metrics: Annotated[dict[Name, Finite], Meta(min_length=1)]
    size_bytes: Count
    latency: _Latency


MAX_BYTES = 4 * 2**20  # an evaluation larger than this is refused unread (one is a few kB)


def pareto_points(models: list[Path]) -> tuple[list[tuple[str, float, float, float]], str]:
    """(model, first metric, size, host latency) of each evaluated model, from the evaluation
    written beside it, and the first model's metric name."""
    points, metric = [], None
    for m in models:
        path = evaluation_path(m)
        if not path.is_file():
            raise EvaluationError(f"{path} not found: run `orbitlite ground evaluate` on {m}")
        ev = decode(read_bounded(path, MAX_BYTES, error=EvaluationError, what="evaluation"), EvaluationFile,
                    source=f"{path} is not an evaluation of `orbitlite ground evaluate`", error=EvaluationError)
        name, value = next(iter(ev.metrics.items()))
        metric = metric or name
        points.append((ev.model, value, ev.size_bytes, ev.latency.avg_us))
    return points, metric


def evaluate(model_path: Path, patches: PatchSet, split_name: str, keras_scores: np.ndarray | None = None,
             runs: int = 200) -> Evaluation:
    from ground.conversion.convert import tflite_scores  # the conversion module imports TensorFlow

    manifest = read_manifest(sidecar_path(model_path))
    scores = tflite_scores(model_path, patches)
    names = list(patches.classes)
    if patches.task == MULTI_LABEL:
        micro, macro, per_class = multilabel_f1(patches.y, scores)
        metrics = {"micro_f1": micro, "macro_f1": macro, "mAP": mean_average_precision(patches.y, scores)}
        cm = None
    else:
        pred = scores.argmax(axis=1)
        per_class = per_class_f1(patches.y, pred, len(names))
        metrics = {"accuracy": top1_accuracy(scores, patches), "macro_f1": float(per_class.mean())}
        cm = confusion(patches.y, pred, len(names)).tolist()
    bench, _ = benchmark(model_path, threads=1, batch=1, rule=Rule(min_runs=runs, min_seconds=0, warmup_runs=20))
    return Evaluation(
        model=manifest.id, task=patches.task, dataset=patches.source, split=split_name, samples=len(patches),
        metrics={k: round(float(v), 4) for k, v in metrics.items()},
        per_class_f1={n: round(float(f), 4) for n, f in zip(names, per_class)},
        keras_agreement=None if keras_scores is None else round(agreement(keras_scores, scores, patches.task), 4),
        latency={"threads": 1, "batch": 1, "avg_us": bench.avg_us, "p50_us": bench.p50_us, "p90_us": bench.p90_us,
                 "std_us": bench.std_us, "init_us": bench.init_us, "interpreter": bench.interpreter},
        size_bytes=manifest.size_bytes, sparsity=manifest.sparsity, confusion=cm,
    )


def model_card(manifest: Manifest, ev: Evaluation) -> str:
    """A model card in markdown: what it is for, what it reads, how it was made, how it did."""
    synthetic = ev.dataset.startswith("synthetic")
    lines = [
        f"# Model card: {manifest.id}", "",
        f"{manifest.architecture}, {manifest.parameters} parameters, {manifest.task} classification of "
        f"{manifest.input.shape[1]} x {manifest.input.shape[2]} px tiles in bands {','.join(manifest.bands)} "
        f"into {len(manifest.classes)} classes ({', '.join(manifest.classes)}).", "",
        "## Deployment", "",
        f"- file: {manifest.size_bytes} bytes, sha256 `{manifest.sha256}`",
        f"- conversion profile: {manifest.conversion.get('profile')} (TensorFlow {manifest.conversion.get('tensorflow')}), "
        f"target {manifest.target}",
        f"- input: {manifest.input.dtype} {list(manifest.input.shape)}"
        + (f", quantization scale {manifest.input.quantization.scale:.6g} zero point {manifest.input.quantization.zero_point}"
           if manifest.input.quantization else ""),
        f"- normalization per band: mean {list(manifest.mean)}, std {list(manifest.std)}",
        f"- weight sparsity: {manifest.sparsity:.1%}",
        f"- host latency (LiteRT, 1 thread, batch 1): {ev.latency['avg_us']:.1f} us mean, {ev.latency['p90_us']:.1f} us p90", "",
        f"## Evaluation on {ev.dataset} ({ev.split}, {ev.samples} samples)", "",
        *([("**The evaluation data are synthetic: these figures show the pipeline works, not how the model "
            "does on real imagery.**"), ""] if synthetic else []),
        *[f"- {k}: {v:.4f}" for k, v in ev.metrics.items()],
        *([f"- agreement with the Keras model: {ev.keras_agreement:.4f}"] if ev.keras_agreement is not None else []),
        "", "| class | F1 |", "|---|---|", *[f"| {c} | {f:.3f} |" for c, f in ev.per_class_f1.items()], "",
        "## Training", "",
        *[f"- {h['stage']}: {len(h['epochs'])} epochs, final validation accuracy "
          f"{_figure(h['epochs'][-1].get('val_accuracy'))}" for h in manifest.training.get("history", []) if h["epochs"]],
        "",
    ]
    return "\n".join(lines)


def _figure(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"
