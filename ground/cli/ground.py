"""`orbitlite ground …`: data, training, compression, conversion, evaluation. TensorFlow is
imported inside the commands that need it, so `--help` stays fast."""

from __future__ import annotations

from pathlib import Path

import click

from ground.cli.data import data as data_group
from ground.cli.nas import nas as nas_group
from ground.cli.zoo import zoo as zoo_group
from ground.training.architectures import ARCHITECTURES, parse_architectures
from onboard.schema import FiniteFloat


@click.group()
def ground() -> None:
    """The ground toolchain: data, training, compression, conversion."""


@ground.command()
@click.option("--out", required=True, type=click.Path(path_type=Path), help="The .npz patch set to write.")
@click.option("--per-class", default=400, show_default=True, type=click.IntRange(1))
@click.option("--size", default=32, show_default=True, type=click.IntRange(8), help="Patch size in pixels.")
@click.option("--bands", default="B02,B03,B04,B08", show_default=True, help="Sentinel-2 bands to generate.")
@click.option("--seed", default=0, show_default=True, type=int)
def synth(out: Path, per_class: int, size: int, bands: str, seed: int) -> None:
    """Write a SYNTHETIC EuroSAT-like labelled patch set (for smoke tests and demos only)."""
    from ground.datasets.synthetic import generate_patches
    from onboard.scenes.scene import parse_bands

    patches = generate_patches(per_class, size=size, bands=parse_bands(bands), seed=seed)
    click.echo(f"{len(patches)} synthetic patches -> {patches.save(out)}")


_data_option = click.option("--data", required=True, type=click.Path(path_type=Path),
                            help="Labelled patches: .npz with x (N, rows, cols, bands), y, bands, classes, source.")


_ARCHS = list(ARCHITECTURES)
_set_option = click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
                           help="Override a field of the architecture's config, e.g. --set activation=tanh "
                                "--set dropout=0.1 (zoo CNNs), --set phi=1 (wrn-eca), --set width=0.5 (mobile).")


@ground.command()
@_data_option
@click.option("--out", required=True, type=click.Path(path_type=Path), help="The .keras model to write (and its .json record).")
@click.option("--arch", default="cnn-l", show_default=True, type=click.Choice(_ARCHS),
              help="Model-zoo CNN (small or large), Wide ResNet with ECA, Edge-TPU mobile net, or NAS-Bench-101 cell net.")
@_set_option
@click.option("--epochs", default=15, show_default=True, type=click.IntRange(1))
@click.option("--batch-size", default=32, show_default=True, type=click.IntRange(1))
@click.option("--optimizer", default="adam", show_default=True, type=click.Choice(["adam", "adamw", "sgd"]))
@click.option("--lr", default=3e-3, show_default=True, type=FiniteFloat(), help="Learning rate.")
@click.option("--weight-decay", default=0.0, show_default=True, type=FiniteFloat())
@click.option("--seed", default=0, show_default=True, type=int, help="Seed of the weights, the data order and the split.")
@click.option("--init-from", type=click.Path(path_type=Path),
              help="Start from this model's encoder (a zoo member's folder, or a .keras model) with a new classifier "
                   "for the dataset's classes; the architecture is the model's (--arch and --set do not apply).")
@click.option("--freeze-encoder", is_flag=True, help="With --init-from: train the new classifier alone.")
@click.option("--relearn-input", is_flag=True,
              help="With --init-from, for a dataset of other bands: learn a new input layer (the rest is kept).")
@click.option("--backend", default="local", show_default=True, type=click.Choice(["local", "slurm"]),
              help="Train here, or data-parallel across the tasks of one SLURM job (MultiWorkerMirroredStrategy; "
                   "--batch-size is the global batch, split between the tasks).")
@click.option("--nodes", default=1, show_default=True, type=click.IntRange(1), help="SLURM nodes (--backend slurm).")
@click.option("--tasks-per-node", default=1, show_default=True, type=click.IntRange(1),
              help="SLURM tasks, each a training worker, per node (--backend slurm).")
@click.option("--cpus-per-task", default=1, show_default=True, type=click.IntRange(1), help="(--backend slurm)")
@click.option("--mem-gb", default=4.0, show_default=True, type=FiniteFloat(0, min_open=True),
              help="Memory per node (--backend slurm).")
@click.option("--time-min", default=60.0, show_default=True, type=FiniteFloat(0, min_open=True),
              help="The job's time limit; near it the job is requeued and resumes from its last epoch (--backend slurm).")
@click.option("--partition", help="SLURM partition [default: the cluster's] (--backend slurm).")
def train(data: Path, out: Path, arch: str, overrides: tuple[str, ...], epochs: int, batch_size: int, optimizer: str,
          lr: float, weight_decay: float, seed: int, init_from: Path | None, freeze_encoder: bool, relearn_input: bool,
          backend: str, nodes: int, tasks_per_node: int, cpus_per_task: int, mem_gb: float, time_min: float,
          partition: str | None) -> None:
    """Train a classifier on labelled patches (the dataset's own split, or a seeded stratified
    70/15/15 one), from scratch or from a trained model's encoder; with --backend slurm,
    data-parallel across SLURM tasks, resumable."""
    if backend == "local" and (nodes, tasks_per_node) != (1, 1):
        raise click.UsageError("--nodes and --tasks-per-node split the training between SLURM tasks: add --backend slurm")
    if init_from is not None and backend == "slurm":
        raise click.UsageError("--init-from fine-tunes here: data-parallel training on SLURM starts from scratch")
    from ground.datasets.patches import load_patches

    if init_from is None and (freeze_encoder or relearn_input):
        raise click.UsageError("--freeze-encoder and --relearn-input go with --init-from")
    if init_from is not None and overrides:
        raise click.UsageError("--set does not apply with --init-from: the architecture is that model's")
    patches = load_patches(data)  # before TensorFlow loads, so a bad path fails fast
    if backend == "slurm":
        from ground.cluster.slurm import cluster_config

        cluster_config()  # so is a missing SLURM
    from ground.training.architectures import parse_overrides
    from ground.training.train import TrainConfig

    config = TrainConfig(epochs, batch_size, optimizer, lr, weight_decay, seed)
    if backend == "slurm":
        from ground.pipeline.data_parallel import Plan, Resources, train_on_slurm

        plan = Plan(data.resolve(), out.resolve(), arch, parse_overrides(arch, overrides), config, seed, nodes,
                    tasks_per_node)
        record, entry = train_on_slurm(plan, Resources(cpus_per_task, mem_gb, time_min, partition),
                                       lambda line: click.echo(line, err=True))
    elif init_from is not None:
        from ground.pipeline.steps import fine_tune_model

        _, record, entry = fine_tune_model(patches, init_from, out, config, freeze_encoder, relearn_input, split_seed=seed)
    else:
        from ground.pipeline.steps import train_model

        _, record, entry = train_model(patches, out, arch, parse_overrides(arch, overrides), config, split_seed=seed)
    last = entry["epochs"][-1]
    click.echo(f"{record.architecture}: {record.parameters} parameters, validation accuracy {last['val_accuracy']:.4f} -> {out}")


@ground.command()
@_data_option
@click.option("--model", "model_path", required=True, type=click.Path(path_type=Path), help="The trained .keras model.")
@click.option("--out", required=True, type=click.Path(path_type=Path), help="The pruned .keras model to write.")
@click.option("--method", default="magnitude", show_default=True, type=click.Choice(["magnitude", "2:4", "xnnpack"]),
              help="Unstructured magnitude pruning; 2:4 structured sparsity; or only the layers XNNPACK's sparse kernels use.")
@click.option("--sparsity", default=0.5, show_default=True, type=FiniteFloat(0, 1, min_open=True, max_open=True),
              help="Target sparsity (magnitude and xnnpack; 2:4 is 50%).")
@click.option("--schedule", default="polynomial", show_default=True, type=click.Choice(["polynomial", "constant"]))
@click.option("--epochs", default=5, show_default=True, type=click.IntRange(1), help="Fine-tuning epochs.")
@click.option("--lr", default=1e-3, show_default=True, type=FiniteFloat())
def prune(data: Path, model_path: Path, out: Path, method: str, sparsity: float, schedule: str, epochs: int,
          lr: float) -> None:
    """Prune a trained model while fine-tuning."""
    from ground.datasets.patches import load_patches

    patches = load_patches(data)
    from ground.pipeline.steps import prune_model
    from ground.training.prune import PruneSpec
    from ground.training.train import TrainConfig

    _, record, entry = prune_model(patches, model_path, out, PruneSpec(method, sparsity, schedule),
                                   TrainConfig(epochs=epochs, learning_rate=lr))
    click.echo(f"sparsity {record.sparsity:.2%}, validation accuracy {entry['epochs'][-1]['val_accuracy']:.4f} -> {out}")


@ground.command()
@_data_option
@click.option("--model", "model_path", required=True, type=click.Path(path_type=Path), help="The .keras model.")
@click.option("--out", required=True, type=click.Path(path_type=Path), help="The .tflite to write (manifest: OUT.json).")
@click.option("--id", "model_id", help="Model id in the manifest [default: the output's stem].")
@click.option("--profile", default="int8", show_default=True,
              type=click.Choice(["fp32", "fp16", "dynamic", "int8", "edgetpu"]),
              help="fp32; fp16 weights; dynamic-range int8 weights; full-integer int8; int8 with a static batch for the Edge TPU.")
def convert(data: Path, model_path: Path, out: Path, model_id: str | None, profile: str) -> None:
    """Convert to TFLite under a profile and write its manifest, with Keras and TFLite accuracy
    on the held-out test split."""
    from ground.datasets.patches import load_patches
    from onboard.errors import ManifestError
    from onboard.schema import file_name

    model_id = file_name(model_id or out.stem, what="model id (--id)", error=ManifestError)  # it names products
    patches = load_patches(data)
    from ground.pipeline.steps import convert_model

    m = convert_model(patches, model_path, out, model_id, profile)
    a = m.accuracy
    click.echo(f"{out}: {m.size_bytes} bytes, test {a.metric} Keras {a.keras:.4f} TFLite {a.tflite:.4f} "
               f"agreement {a.agreement:.4f} ({a.samples} patches)")


@ground.command()
@_data_option
@click.option("--teacher", "teacher_path", required=True, type=click.Path(path_type=Path), help="The trained teacher (.keras).")
@click.option("--out", required=True, type=click.Path(path_type=Path), help="The student .keras model to write.")
@click.option("--arch", default="cnn-s", show_default=True, type=click.Choice(_ARCHS), help="The student's architecture.")
@_set_option
@click.option("--temperature", default=4.0, show_default=True, type=FiniteFloat(min=1.0))
@click.option("--alpha", default=0.1, show_default=True, type=FiniteFloat(0, 1), help="Weight of the label loss; the rest is the teacher's.")
@click.option("--epochs", default=15, show_default=True, type=click.IntRange(1))
@click.option("--lr", default=3e-3, show_default=True, type=FiniteFloat())
@click.option("--seed", default=0, show_default=True, type=int)
def distill(data: Path, teacher_path: Path, out: Path, arch: str, overrides: tuple[str, ...], temperature: float,
            alpha: float, epochs: int, lr: float, seed: int) -> None:
    """Train a small student from a teacher's softened predictions (knowledge distillation)."""
    from ground.datasets.patches import load_patches

    patches = load_patches(data)
    from ground.training.architectures import parse_overrides
    from ground.pipeline.steps import distill_model
    from ground.training.train import TrainConfig

    _, record, entry = distill_model(patches, teacher_path, out, arch, parse_overrides(arch, overrides),
                                     TrainConfig(epochs=epochs, learning_rate=lr, seed=seed), temperature, alpha)
    click.echo(f"{record.architecture}: {record.parameters} parameters, validation accuracy "
               f"{entry['epochs'][-1]['val_accuracy']:.4f} -> {out}")


@ground.command()
@_data_option
@click.option("--model", "model_path", required=True, type=click.Path(path_type=Path), help="The trained .keras model.")
@click.option("--out", required=True, type=click.Path(path_type=Path), help="The quantization-aware model to write (.h5).")
@click.option("--epochs", default=3, show_default=True, type=click.IntRange(1))
@click.option("--lr", default=5e-4, show_default=True, type=FiniteFloat())
def qat(data: Path, model_path: Path, out: Path, epochs: int, lr: float) -> None:
    """Fine-tune with quantization-aware training; convert the result with --profile int8."""
    from ground.datasets.patches import load_patches

    patches = load_patches(data)
    from ground.pipeline.steps import qat_model
    from ground.training.train import TrainConfig

    _, _, entry = qat_model(patches, model_path, out, TrainConfig(epochs=epochs, learning_rate=lr))
    click.echo(f"quantization-aware: validation accuracy {entry['epochs'][-1]['val_accuracy']:.4f} -> {out}")


@ground.command()
@_data_option
@click.option("--model", "model_path", required=True, type=click.Path(path_type=Path), help="The .tflite model (manifest beside it).")
@click.option("--keras", "keras_path", type=click.Path(path_type=Path), help="Its Keras original, to measure their agreement.")
@click.option("--split", "split_name", default="test", show_default=True, type=click.Choice(["train", "val", "test"]))
@click.option("--runs", default=200, show_default=True, type=click.IntRange(1), help="Timed invokes for the host latency.")
def evaluate(data: Path, model_path: Path, keras_path: Path | None, split_name: str, runs: int) -> None:
    """Evaluate a converted model: metrics, agreement with Keras, host latency; writes
    MODEL.eval.json and a model card MODEL.md beside it."""
    from ground.datasets.patches import load_patches
    from onboard.contracts.manifest import read_manifest, sidecar_path

    patches = load_patches(data)
    manifest = read_manifest(sidecar_path(model_path))
    from ground.pipeline.steps import evaluate_model

    ev, evaluation, card = evaluate_model(patches, manifest, model_path, keras_path, split_name, runs)
    click.echo(f"{ev.model} on {ev.dataset} ({split_name}, {ev.samples} samples):")
    for k, v in ev.metrics.items():
        click.echo(f"  {k:<10} {v:.4f}")
    if ev.keras_agreement is not None:
        click.echo(f"  agreement with Keras {ev.keras_agreement:.4f}")
    click.echo("  per-class F1: " + ", ".join(f"{c} {f:.3f}" for c, f in ev.per_class_f1.items()))
    click.echo(f"  host latency {ev.latency['avg_us']:.1f} us (p90 {ev.latency['p90_us']:.1f}), {ev.size_bytes} bytes")
    click.echo(f"evaluation -> {evaluation}")
    click.echo(f"model card -> {card}")


@ground.command()
@click.argument("model", type=click.Path(path_type=Path))
@click.option("--out", type=click.Path(path_type=Path), help="Also write the report (markdown) here.")
def preflight(model: Path, out: Path | None) -> None:
    """Pre-flight report of a .tflite: operators, Edge TPU compatibility, XNNPACK sparse
    eligibility, size raw and gzipped, measured sparsity."""
    from ground.conversion.preflight import preflight_file
    from onboard.files import write_verified

    report = preflight_file(model).to_markdown()
    click.echo(report, nl=False)
    if out:
        write_verified(out, report.encode())


@ground.command()
@click.argument("models", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--out", required=True, type=click.Path(path_type=Path), help="The PNG to write.")
def pareto(models: tuple[Path, ...], out: Path) -> None:
    """Plot accuracy against size and latency for evaluated models (run `ground evaluate` on
    each MODEL first)."""
    from ground.conversion.evaluate import pareto_points
    from ground.downlink.render import pareto as plot

    points, metric = pareto_points(list(models))
    click.echo(f"{len(points)} models -> {plot(points, metric, out)}")


@ground.command()
@_data_option
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Directory for models, table and plot.")
@click.option("--archs", default="cnn-l,wrn-eca,mobile,nas-cell", show_default=True,
              help="Comma-separated architectures to study.")
@click.option("--student", default="cnn-s", show_default=True, type=click.Choice(_ARCHS), help="The distilled student.")
@click.option("--epochs", default=10, show_default=True, type=click.IntRange(1))
@click.option("--seed", default=0, show_default=True, type=int)
def study(data: Path, out: Path, archs: str, student: str, epochs: int, seed: int) -> None:
    """For each architecture: train, convert fp32 and int8, prune to 50% and convert int8, distill
    a student and convert int8; evaluate every form; write study.md and pareto.png."""
    from ground.datasets.patches import load_patches

    names = parse_architectures(archs)
    patches = load_patches(data)
    from ground.pipeline.study import run_study, study_table, write_study

    rows = run_study(patches, names, out, epochs, student, seed)
    click.echo(study_table(rows), nl=False)
    table, plot = write_study(rows, out, patches.source)
    click.echo(f"table -> {table}\nplot -> {plot}")


ground.add_command(data_group)
ground.add_command(zoo_group)
ground.add_command(nas_group)
