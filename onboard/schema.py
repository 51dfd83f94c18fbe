"""The one schema library for everything read from outside: manifests, products, bundles, the serve
and simulate configs, raster sidecars, board profiles, zoo grids.

A schema is a `msgspec.Struct` subclass of `Schema` (unknown fields refused, immutable, fields by
keyword) whose fields carry their constraints (`Annotated[int, Meta(gt=0)]`, the aliases below).
`decode` parses and validates bytes in one pass (JSON, msgpack, TOML); `convert` validates what is
already parsed. Both end, on bad input, in the caller's own error type with one line that names the
source and the key path (`serve.toml: models.ladder[0]: Expected `str`, got `int``), never a
traceback: msgspec's decoders are bounded by the input's size and the schema's depth, and the
caller bounds the input's size before it gets here (`read_bounded`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import msgspec
from msgspec import Meta

from onboard.errors import OrbitliteError

T = TypeVar("T")
Format = Literal["json", "msgpack", "toml"]

# Constrained scalars shared by the schemas. Bounds make NaN and +-inf fail too.
Finite = Annotated[float, Meta(ge=-1e300, le=1e300)]
NonNegative = Annotated[float, Meta(ge=0.0, le=1e300)]
Positive = Annotated[float, Meta(gt=0.0, le=1e300)]
Fraction = Annotated[float, Meta(ge=0.0, le=1.0)]
Count = Annotated[int, Meta(ge=0, le=2**63 - 1)]
PositiveInt = Annotated[int, Meta(ge=1, le=2**63 - 1)]
Name = Annotated[str, Meta(min_length=1, max_length=255)]
Text = Annotated[str, Meta(max_length=4096)]
Sha256 = Annotated[str, Meta(pattern="^[0-9a-f]{64}$")]


class Schema(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """Base of every schema: a field the schema does not know is an error, not silently dropped."""


_DECODERS = {
    "json": msgspec.json.decode,
    "msgpack": msgspec.msgpack.decode,
    "toml": msgspec.toml.decode,
}


def decode(data: bytes | str, schema: type[T], *, source: str, error: type[OrbitliteError],
           format: Format = "json") -> T:
    """`data` parsed as `format` and validated against `schema`, or `error` with one line."""
    try:
        return _DECODERS[format](data, type=schema)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise error(f"{source}: {_one_line(exc)}") from None
    except (RecursionError, OverflowError, ValueError, UnicodeDecodeError) as exc:
        raise error(f"{source}: not valid {format}: {type(exc).__name__}") from None


def convert(obj: Any, schema: type[T], *, source: str, error: type[OrbitliteError],
            strict: bool = True) -> T:
    """`obj` (already parsed: a dict from TOML, a msgpack map) validated against `schema`."""
    try:
        return msgspec.convert(obj, type=schema, strict=strict)
    except msgspec.ValidationError as exc:
        raise error(f"{source}: {_one_line(exc)}") from None
    except (RecursionError, OverflowError, ValueError) as exc:
        raise error(f"{source}: {type(exc).__name__}") from None


def read_bounded(path: Path, limit: int, *, error: type[OrbitliteError], what: str = "file") -> bytes:
    """The bytes of `path`, refused with one line if it is larger than `limit` (read no more)."""
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if size > limit:
                raise error(f"{path}: {what} of {size:,} bytes is larger than the {limit:,} allowed")
            data = f.read(limit + 1)
    except OSError as exc:
        raise error(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    if len(data) > limit:
        raise error(f"{path}: {what} is larger than the {limit:,} bytes allowed")
    return data


def to_builtins(obj: Any) -> Any:
    """A schema instance as plain dicts, lists and scalars (for JSON, msgpack or TOML writers)."""
    return msgspec.to_builtins(obj)


def _one_line(exc: Exception) -> str:
    """msgspec's "Expected `int`, got `str` - at `$.models.ladder[0]`" as "models.ladder[0]: ..."."""
    message = " ".join(str(exc).split())
    text, sep, where = message.rpartition(" - at `$")
    if not sep:
        return message
    path = where.rstrip("`").lstrip(".")
    return f"{path}: {text}" if path else text
