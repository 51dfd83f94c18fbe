"""The architectures `ground train` and `ground distill` build, by name, with config overrides
given as `key=value` strings (typed from the family's config dataclass). TensorFlow is loaded
only by `build`, so the CLI can offer the names without it."""

from __future__ import annotations

import dataclasses
import math
import typing
from typing import TYPE_CHECKING, Any

from ground.errors import ArchitectureError
from onboard.schema import decode
from models import FAMILIES

if TYPE_CHECKING:
    from ground.tf import keras

# name -> (family, config fields it fixes)
ARCHITECTURES: dict[str, tuple[str, dict[str, Any]]] = {
    "cnn-s": ("zoo-cnn", {"size": "cnn-s"}),
    "cnn-l": ("zoo-cnn", {"size": "cnn-l"}),
    "wrn-eca": ("wrn-eca", {}),
    "mobile": ("mobile", {}),
    "nas-cell": ("nas-cell", {}),
}


def _convert(text: str, kind: Any, key: str) -> Any:
    if kind not in (int, float, str):  # tuples and nested lists, e.g. matrix=[[0,1],[0,0]]
        return decode(text, Any, source=f"--set {key}: not JSON", error=ArchitectureError)
    try:
        value = kind(text)
    except ValueError as exc:
        raise ArchitectureError(f"--set {key}={text[:40]}: {str(exc).split(';')[0]}") from None
    if kind is float and not math.isfinite(value):
        raise ArchitectureError(f"--set {key}={text}: not a finite number")
    return value


def parse_overrides(arch: str, items: tuple[str, ...] | list[str]) -> dict[str, Any]:
    """`["dropout=0.1", "activation=tanh"]` as typed config values for `arch`."""
    config_class = FAMILIES[ARCHITECTURES[arch][0]].config
    hints = typing.get_type_hints(config_class)
    fields = {f.name for f in dataclasses.fields(config_class)}
    out: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or key not in fields:
            raise ArchitectureError(f"--set {item!r}: {arch} takes key=value with key one of {', '.join(sorted(fields))}")
        value = _convert(text, hints[key], key)
        out[key] = tuple(tuple(v) if isinstance(v, list) else v for v in value) if isinstance(value, list) else value
    return out


def parse_architectures(text: str) -> list[str]:
    """A comma-separated list of architecture names, each one known."""
    names = [a.strip() for a in text.split(",") if a.strip()]
    unknown = [a for a in names if a not in ARCHITECTURES]
    if unknown or not names:
        raise ArchitectureError(f"--archs: unknown {', '.join(unknown) or 'none given'}; "
                                f"choose from {', '.join(ARCHITECTURES)}")
    return names


def build(arch: str, input_shape: tuple[int, int, int], n_classes: int, head: str, overrides: dict[str, Any],
          seed: int) -> keras.Model:
    if arch not in ARCHITECTURES:
        raise ArchitectureError(f"unknown architecture {arch!r}; choose from {', '.join(ARCHITECTURES)}")
    family_name, fixed = ARCHITECTURES[arch]
    family = FAMILIES[family_name]
    try:
        config = family.config(**{"seed": seed, **overrides, **fixed})
        return family.build(tuple(int(s) for s in input_shape), n_classes, config, head=head)
    except (TypeError, ValueError) as exc:
        raise ArchitectureError(f"{arch}: {exc}") from None
