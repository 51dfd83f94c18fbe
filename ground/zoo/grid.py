"""A zoo's grid (`GRID.toml`) and the members it crosses out to.

The grid crosses architectures (a name of `ground train --arch`, or a table with config
overrides: `{name = "wrn-eca", set = {phi = 1}}`), the hyperparameter axes of the model-zoo
datasets (activation, dropout, initializer; optimizer, learning rate, weight decay, batch size,
epochs) and seeds, as Schürholt et al.'s zoos do; it lists the epochs whose weights are kept, the
sparsified twins each member gets, and each member's time and memory limits. An axis an
architecture does not have (activation for a NAS cell, say) is refused unless it holds one value,
which that architecture then ignores.

Each member is a frozen record with a key (`cnn-s-s0-1a2b3c4d`: architecture, seed and a hash of
everything else), so the same grid always names the same members, and a member's folder says
which point of the grid it is."""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar, Union

from msgspec import Meta

from ground.errors import ZooError
from ground.training.architectures import ARCHITECTURES
from onboard.schema import (FileName, Finite, Fraction, Int64, Name, NonNegative, Positive, PositiveInt, Schema,
                            decode, encode_json, read_bounded, to_builtins)

T = TypeVar("T")
Axis = Annotated[tuple[T, ...], Meta(min_length=1, max_length=1000)]
MAX_BYTES = 1 << 20
MAX_MEMBERS = 100_000
# The axes a model's config takes (the rest are the optimizer's, taken by every architecture).
MODEL_AXES = ("activation", "dropout", "initializer")
TWIN_METHODS = ("magnitude", "variational-dropout")


class Architecture(Schema):
    name: Name
    set: dict[Name, Any] = {}


class Hyper(Schema):
    activation: Axis[Name] = ("relu",)
    dropout: Axis[Fraction] = (0.0,)
    initializer: Axis[Name] = ("glorot_uniform",)
    optimizer: Axis[Literal["adam", "adamw", "sgd"]] = ("adam",)
    learning_rate: Axis[Positive] = (3e-3,)
    weight_decay: Axis[NonNegative] = (0.0,)
    batch_size: Axis[PositiveInt] = (32,)
    epochs: Axis[Annotated[int, Meta(ge=1, le=100_000)]] = (10,)


class Twins(Schema):
    """The sparsified twins of every member, each restarted from the dense model's weights at
    `restart_epoch` (default: its last) and trained `epochs` more: magnitude pruning (tfmot) to
    each listed sparsity, and variational dropout (Molchanov et al. 2017), pruned where log alpha
    >= `vd_threshold` and, for comparison at equal sparsity, at each listed sparsity by log alpha."""

    sparsities: Annotated[tuple[Annotated[float, Meta(gt=0.0, lt=1.0)], ...], Meta(max_length=100)] = ()
    methods: Annotated[tuple[Literal["magnitude", "variational-dropout"], ...], Meta(max_length=2)] = TWIN_METHODS
    restart_epoch: PositiveInt | None = None
    epochs: Annotated[int, Meta(ge=1, le=100_000)] = 5
    learning_rate: Positive = 1e-3
    vd_threshold: Finite = 3.0


class Limits(Schema):
    """What one member may use (SLURM asks for it; the local pool enforces the time)."""

    time_min: Annotated[float, Meta(gt=0, le=525_600)] = 60.0
    mem_gb: Annotated[float, Meta(gt=0, le=4096)] = 4.0
    cpus: Annotated[int, Meta(ge=1, le=1024)] = 1


class Grid(Schema):
    name: FileName
    architectures: Axis[Union[Name, Architecture]]
    seeds: Axis[Int64]
    checkpoints: Annotated[tuple[Annotated[int, Meta(ge=1, le=100_000)], ...], Meta(max_length=100_000)] = ()
    hyper: Hyper = Hyper()
    twins: Twins = Twins()
    limits: Limits = Limits()
    split_seed: Int64 = 0

    def __post_init__(self) -> None:
        for arch in self.architectures:
            name = arch if isinstance(arch, str) else arch.name
            if name not in ARCHITECTURES:
                raise ValueError(f"unknown architecture {name!r}; choose from {', '.join(ARCHITECTURES)}")
        if self.twins.sparsities and "magnitude" not in self.twins.methods and "variational-dropout" not in self.twins.methods:
            raise ValueError("twins.sparsities needs a twin method")
        if self.twins.restart_epoch is not None:
            shortest = min(self.hyper.epochs)
            if self.twins.restart_epoch > shortest:
                raise ValueError(f"twins.restart_epoch {self.twins.restart_epoch} is after the last epoch of the "
                                 f"shortest training ({shortest})")
        if len(set(self.seeds)) != len(self.seeds):
            raise ValueError("a seed is listed twice")


class Train(Schema):
    epochs: PositiveInt
    batch_size: PositiveInt
    optimizer: Name
    learning_rate: Positive
    weight_decay: NonNegative


class Member(Schema):
    """One point of the grid: what `member.train_member` trains."""

    key: FileName
    architecture: Name
    overrides: dict[Name, Any]
    seed: Int64
    split_seed: Int64
    train: Train
    checkpoints: tuple[PositiveInt, ...]  # epochs whose weights are kept: the listed, the twins' restart, the last
    twins: Twins
    limits: Limits

    @property
    def restart_epoch(self) -> int:
        return self.twins.restart_epoch or self.train.epochs


def read_grid(path: Path) -> Grid:
    return decode(read_bounded(path, MAX_BYTES, error=ZooError, what="zoo grid"), Grid, source=str(path),
                  error=ZooError, format="toml")


def members(grid: Grid, model_fields: dict[str, set[str]] | None = None) -> list[Member]:
    """The grid's members, crossed in a fixed order. `model_fields` (architecture -> the fields
    of its config) decides which model axes apply; `config_fields` gives it."""
    fields = model_fields or config_fields([a if isinstance(a, str) else a.name for a in grid.architectures])
    h = grid.hyper
    out: list[Member] = []
    for arch in grid.architectures:
        name, fixed = (arch, {}) if isinstance(arch, str) else (arch.name, dict(arch.set))
        unknown = sorted(set(fixed) - fields[name])
        if unknown:
            raise ZooError(f"architecture {name}: set.{unknown[0]} is not a field of its config; it takes "
                           f"{', '.join(sorted(fields[name] - {'seed'}))}")
        axes = {}
        for axis in MODEL_AXES:
            values = getattr(h, axis)
            if axis in fields[name]:
                axes[axis] = values
            elif len(values) > 1:
                raise ZooError(f"hyper.{axis} has {len(values)} values but {name} has no {axis}; give it one value "
                               "or leave the architecture out")
        model_points = [dict(zip(axes, point)) for point in itertools.product(*axes.values())]
        for model, optimizer, lr, wd, batch, epochs, seed in itertools.product(
                model_points, h.optimizer, h.learning_rate, h.weight_decay, h.batch_size, h.epochs, grid.seeds):
            train = Train(epochs=epochs, batch_size=batch, optimizer=optimizer, learning_rate=lr, weight_decay=wd)
            checkpoints = tuple(sorted({c for c in grid.checkpoints if c <= epochs} | {epochs}
                                       | ({grid.twins.restart_epoch} if grid.twins.restart_epoch else set())))
            overrides = {**fixed, **model}
            point = {"architecture": name, "overrides": overrides, "seed": seed, "split_seed": grid.split_seed,
                     "train": train, "checkpoints": checkpoints, "twins": grid.twins}
            digest = hashlib.sha256(encode_json(to_builtins(point))).hexdigest()[:8]
            out.append(Member(key=f"{name}-s{seed}-{digest}", limits=grid.limits, **point))
            if len(out) > MAX_MEMBERS:
                raise ZooError(f"the grid crosses out to more than {MAX_MEMBERS} members; split it")
    keys = [m.key for m in out]
    if len(set(keys)) != len(keys):
        raise ZooError("two members of the grid are the same point (an axis lists a value twice)")
    return out


def config_fields(names: list[str]) -> dict[str, set[str]]:
    """The config fields of each architecture (imports its family, and so TensorFlow's Keras)."""
    import ground.tf  # noqa: F401  TensorFlow loads quietly, before the families' Keras
    from models import FAMILIES

    return {n: {f.name for f in dataclasses.fields(FAMILIES[ARCHITECTURES[n][0]].config)} - set(ARCHITECTURES[n][1])
            for n in set(names)}
