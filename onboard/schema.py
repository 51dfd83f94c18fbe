"""The one schema library for everything read from outside: manifests, products, bundles, the serve
and simulate configs, raster sidecars, board profiles, zoo grids.

A schema is a `msgspec.Struct` subclass of `Schema` (unknown fields refused, immutable) whose
fields carry their constraints (`Annotated[int, Meta(gt=0)]`, the aliases below); msgspec applies
`kw_only` to each class's own fields, so a schema whose required fields follow defaulted ones says
`kw_only=True` itself. Relations between fields (lengths that must agree, one value under another)
go in the schema's `__post_init__`, which raises ValueError: the error then reads like any other,
with its key path. `decode` parses and validates bytes in one pass (JSON, msgpack, TOML);
`decode_contract` first refuses another contract or an unknown version by name; `convert`
validates what is already parsed. All end, on bad input, in the caller's own error type with one
line that names the source and the key path (`serve.toml: models.ladder[0]: Expected `str`, got
`int``), never a traceback: msgspec's decoders are bounded by the input's size and the schema's
depth, and the caller bounds the input's size before it gets here (`read_bounded`).
"""

from __future__ import annotations

import math
import os
import re
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar, Union

import click
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
# A name (of a band, a class, a board, a station): printable, so it reads in one error line.
Name = Annotated[str, Meta(min_length=1, max_length=255, pattern=r"^[^\x00-\x1f\x7f]+\Z")]
Text = Annotated[str, Meta(max_length=4096)]
Sha256 = Annotated[str, Meta(pattern=r"^[0-9a-f]{64}\Z")]
Int64 = Annotated[int, Meta(ge=-(2**63), le=2**63 - 1)]
# A byte count written as an integer or as a float with no fraction (`600e6` in TOML).
Bytes = Annotated[float, Meta(gt=0, le=2**53, multiple_of=1)]
# A path as a config names it (relative to the config file, which resolves it): no control character.
PathText = Annotated[str, Meta(min_length=1, max_length=4096, pattern=r"^[^\x00-\x1f\x7f]+\Z")]
# A name that is safe as (part of) a file name: no path separator, no control character, not `.`
# or `..`. Bytes on disk may exceed 255 for non-ASCII names; a reader that opens one checks that.
FileName = Annotated[str, Meta(min_length=1, max_length=255, pattern=r"^(?!\.\.?\Z)[^/\\\x00-\x1f\x7f]+\Z")]
Scalar = Union[None, bool, Int64, Finite, Text]


def nested(depth: int) -> Any:
    """Free-form data (a product's runtime figures, a training history) of scalars, lists and
    maps nested at most `depth` deep, with finite numbers and bounded strings."""
    value: Any = Scalar
    for _ in range(depth):
        value = Union[Scalar, list[value], dict[Name, value]]
    return value


Data = nested(6)


class FiniteFloat(click.FloatRange):
    """A command-line float within its range and finite: click's FloatRange lets NaN through (it
    compares false with either bound), and without bounds infinity too."""

    name = "finite float"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> float:
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number.", param, ctx)
        return number


class Schema(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """Base of every schema: a field the schema does not know is an error, not silently dropped."""


_DECODERS = {
    "json": msgspec.json.decode,
    "msgpack": msgspec.msgpack.decode,
}


class Envelope(msgspec.Struct):
    """The head of every versioned contract (`{"schema": ..., "version": ..., ...}`); the other
    keys are skipped unread."""

    schema: Any = None
    version: Any = None


def decode_contract(data: bytes | str, schema: type[T], *, contract: str, version: int, what: str, source: str,
                    error: type[OrbitliteError], unreadable: str, format: Format = "json") -> T:
    """`data`, a versioned contract, validated against `schema`. Input that does not parse is
    refused as `unreadable`; another contract, or a version this reader does not know, by name,
    before any field is looked at; a field that breaks the schema as `source is malformed`."""
    head = decode(data, Envelope, source=unreadable, error=error, format=format)
    if head.schema != contract:
        raise error(f"{source} is not an {what} (schema {contract!r})")
    if head.version != version:
        raise error(f"{source} has {what} version {_brief(head.version)}; this reader knows version {version}")
    return decode(data, schema, source=f"{source} is malformed", error=error, format=format)


def decode(data: bytes | str, schema: type[T], *, source: str, error: type[OrbitliteError],
           format: Format = "json") -> T:
    """`data` parsed as `format` and validated against `schema`, or `error` with one line. TOML
    is parsed, then converted: a string holding an ISO 8601 time reads as a datetime, as in JSON."""
    if format == "toml":
        try:
            obj = tomllib.loads(data.decode() if isinstance(data, bytes) else data)
        except RecursionError:
            raise error(f"{source}: nested too deeply") from None
        except ValueError as exc:  # TOMLDecodeError, UnicodeDecodeError, or an integer of over 4,300 digits
            raise error(f"{source}: not valid TOML: {_one_line(exc, schema).split(';')[0]}") from None
        return convert(obj, schema, source=source, error=error)
    try:
        return _DECODERS[format](data, type=schema)
    except msgspec.ValidationError as exc:
        raise error(f"{source}: {_one_line(exc, schema)}") from None
    except msgspec.DecodeError as exc:
        text = _one_line(exc, schema)
        raise error(f"{source}: {text if format.upper() in text else f'not valid {format.upper()}: {text}'}") from None
    except RecursionError:
        raise error(f"{source}: nested too deeply") from None
    except (OverflowError, ValueError, UnicodeDecodeError) as exc:
        raise error(f"{source}: not valid {format}: {type(exc).__name__}") from None


def convert(obj: Any, schema: type[T], *, source: str, error: type[OrbitliteError],
            strict: bool = True) -> T:
    """`obj` (already parsed: a dict from TOML, a msgpack map) validated against `schema`."""
    try:
        return msgspec.convert(obj, type=schema, strict=strict)
    except msgspec.ValidationError as exc:
        raise error(f"{source}: {_one_line(exc, schema)}") from None
    except RecursionError:
        raise error(f"{source}: nested too deeply") from None
    except (OverflowError, ValueError) as exc:
        raise error(f"{source}: {type(exc).__name__}") from None


def file_name(name: Any, *, what: str, error: type[OrbitliteError]) -> str:
    """`name`, unchanged, if it is safe as a file name: a `FileName` (no path separator, no control
    character, not `.` or `..`) of at most 255 bytes. Otherwise `error` in one line: a file name
    built from input (a scene or model id) is refused, never cleaned up into another name."""
    try:
        msgspec.convert(name, FileName)
    except msgspec.ValidationError:
        raise error(f"{what} {_brief(name)} cannot name a file: it must be 1 to 255 characters without `/`, `\\` "
                    "or control characters, and not `.` or `..`") from None
    if len(name.encode()) > 255:
        raise error(f"{what} {_brief(name)} is {len(name.encode())} bytes long; a file name holds at most 255")
    return name


def read_bounded(path: Path, limit: int, *, error: type[OrbitliteError], what: str = "file") -> bytes:
    """The bytes of `path`, refused with one line if it is larger than `limit` (read no more)."""
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if size > limit:
                raise error(f"{path}: {what} of {size:,} bytes is larger than the {limit:,} allowed")
            data = f.read(limit + 1)
    except OSError as exc:
        raise error(f"{what} {path} cannot be read: {exc.strerror or exc}") from None
    if len(data) > limit:
        raise error(f"{path}: {what} is larger than the {limit:,} bytes allowed")
    return data


def to_builtins(obj: Any) -> Any:
    """A schema instance as plain dicts, lists and scalars (for JSON, msgpack or TOML writers)."""
    return msgspec.to_builtins(obj, enc_hook=_scalar)


def encode_json(obj: Any, *, indent: int = 0) -> bytes:
    """`obj` (a schema instance, or plain data) as JSON; a non-finite float becomes null."""
    data = msgspec.json.encode(obj, enc_hook=_scalar)
    return msgspec.json.format(data, indent=indent) if indent else data


def _scalar(obj: Any) -> Any:
    """A numpy scalar (a statistic computed on the ground) as the Python scalar it holds."""
    item = getattr(obj, "item", None)
    if item is None:
        raise NotImplementedError(f"cannot encode {type(obj).__name__}")
    return item()


def _brief(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _one_line(exc: Exception, schema: Any) -> str:
    """msgspec's "Expected `int`, got `str` - at `$.models.ladder[0]`" as "models.ladder[0]: ...";
    an unknown field as "budget.deadline: unknown key (known: cpu_seconds, ...)"."""
    message = " ".join(str(exc).split())
    text, sep, where = message.rpartition(" - at `$")
    if not sep:
        text, where = message, ""
    path = where.rstrip("`").lstrip(".")
    unknown = _UNKNOWN.fullmatch(text)
    if unknown:
        known = _fields_at(msgspec.inspect.type_info(schema), path)
        name = unknown[1] if len(unknown[1]) <= 40 else unknown[1][:37] + "..."
        key = f"{path}.{name}" if path else name
        return f"{key}: unknown key" + (f" (known: {', '.join(known)})" if known else "")
    for pattern, meaning in _PATTERNS.items():
        text = text.replace(f"matching regex {pattern!r}", meaning)
    missing = _MISSING.fullmatch(text)
    if missing:
        return f"{path}.{missing[1]}: missing" if path else f"{missing[1]}: missing"
    return f"{path}: {text}" if path else text


# What the patterns of the aliases above mean, said in errors instead of the regex.
_PATTERNS = {
    msgspec.inspect.type_info(FileName).pattern:
        "that makes a file name (no `/`, `\\` or control character, not `.` or `..`)",
    msgspec.inspect.type_info(Name).pattern: "without control characters",
    msgspec.inspect.type_info(Sha256).pattern: "of 64 lowercase hex digits",
}
_UNKNOWN = re.compile(r"Object contains unknown field `(.*)`")
_MISSING = re.compile(r"Object missing required field `(.*)`")
_STEP = re.compile(r"\.([^.\[]+)|\[[^\]]*\]")


def _fields_at(info: Any, path: str) -> list[str]:
    """The names of the fields of the schema object at `path` (`models`, `stations[0]`), or none
    when the path leads elsewhere."""
    for step in _STEP.finditer("." + path if path else ""):
        info = _struct_in(info, step[1] is None)
        if info is None:
            return []
        if step[1] is None:
            continue
        info = next((f.type for f in getattr(info, "fields", ()) if f.encode_name == step[1]), None)
    found = _struct_in(info, False)
    return sorted(f.encode_name for f in found.fields) if isinstance(found, msgspec.inspect.StructType) else []


def _struct_in(info: Any, item: bool) -> Any:
    """`info` without its union and metadata layers; with `item`, the type of its elements."""
    while isinstance(info, (msgspec.inspect.UnionType, msgspec.inspect.Metadata)):
        if isinstance(info, msgspec.inspect.Metadata):
            info = info.type
        else:
            options = [t for t in info.types if not isinstance(t, msgspec.inspect.NoneType)]
            # a tagged union of tables: which one the input meant is not known here
            info = options[0] if len(options) == 1 or not all(
                isinstance(t, msgspec.inspect.StructType) for t in options) else None
    if item:
        info = getattr(info, "item_type", None) or getattr(info, "value_type", None)
        return _struct_in(info, False) if info is not None else None
    return info
