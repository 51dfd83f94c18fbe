"""A compression study over model families, as in the studies orbitlite reproduces: each family
trained, then converted to fp32 and int8, magnitude-pruned to 50% and converted to int8, and
distilled into a small student converted to int8; every form evaluated for accuracy, size and
host latency, in one table and one Pareto plot."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import click

from ground.conversion.evaluate import Evaluation, evaluate, evaluation_path
from ground.datasets.patches import PatchSet
from ground.downlink.render import pareto
from ground.pipeline.steps import convert_model, distill_model, prune_model, split, train_model
from ground.training.prune import PruneSpec
from ground.training.train import TrainConfig
from onboard.files import ensure_writable_dir, write_verified


@dataclass(frozen=True)
class StudyRow:
    family: str
    form: str
    model: str
    evaluation: Evaluation


def run_study(patches: PatchSet, archs: list[str], out: Path, epochs: int, student: str = "cnn-s",
              seed: int = 0) -> list[StudyRow]:
    ensure_writable_dir(out)
    _, _, test = split(patches, seed)
    rows: list[StudyRow] = []

    def converted(family: str, form: str, keras_path: Path, profile: str) -> None:
        model_id = f"{family}-{form}"
        tflite = out / f"{model_id}.tflite"
        convert_model(patches, keras_path, tflite, model_id, profile)
        ev = evaluate(tflite, test, "test")
        ev.write(evaluation_path(tflite))
        rows.append(StudyRow(family, form, model_id, ev))
        click.echo(f"  {model_id}: {next(iter(ev.metrics.values())):.4f}, {ev.size_bytes} bytes, "
                   f"{ev.latency['avg_us']:.0f} us", err=True)

    for arch in archs:
        click.echo(f"{arch}:", err=True)
        base = out / f"{arch}.keras"
        train_model(patches, base, arch, {}, TrainConfig(epochs=epochs, seed=seed), split_seed=seed)
        converted(arch, "fp32", base, "fp32")
        converted(arch, "int8", base, "int8")
        pruned = out / f"{arch}-pruned50.keras"
        prune_model(patches, base, pruned, PruneSpec(sparsity=0.5),
                    TrainConfig(epochs=max(2, epochs // 3), learning_rate=1e-3, seed=seed))
        converted(arch, "pruned50-int8", pruned, "int8")
        distilled = out / f"{arch}-student.keras"
        distill_model(patches, base, distilled, student, {}, TrainConfig(epochs=epochs, seed=seed), 4.0, 0.1)
        converted(arch, f"{student}-student-int8", distilled, "int8")
    return rows


def study_table(rows: list[StudyRow]) -> str:
    metric = next(iter(rows[0].evaluation.metrics))
    lines = [f"| family | form | {metric} | size (bytes) | sparsity | host latency (us, batch 1) |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        ev = r.evaluation
        lines.append(f"| {r.family} | {r.form} | {ev.metrics[metric]:.4f} | {ev.size_bytes} | {ev.sparsity:.0%} "
                     f"| {ev.latency['avg_us']:.1f} |")
    return "\n".join(lines) + "\n"


def write_study(rows: list[StudyRow], out: Path, source: str) -> tuple[Path, Path]:
    note = ("\nThe data are SYNTHETIC: the figures compare the forms with each other, not with real-data results.\n"
            if source.startswith("synthetic") else "")
    table = write_verified(out / "study.md", (f"# Compression study on {source}\n\n" + study_table(rows) + note).encode())
    metric = next(iter(rows[0].evaluation.metrics))
    points = [(r.model, r.evaluation.metrics[metric], r.evaluation.size_bytes, r.evaluation.latency["avg_us"])
              for r in rows]
    return table, pareto(points, metric, out / "pareto.png")
