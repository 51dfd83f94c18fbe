"""README's tables of the serve config, the simulate config and the board profile say what their
schemas say: every key, its type, its default and its range, read from the schema (msgspec's
type info), so a key added, renamed or re-bounded in the code without the README fails here."""

from __future__ import annotations

import enum
import re

import msgspec
import pytest
from msgspec import inspect

from ground.simulator.config import SimulateFile
from hil.boards.profile import BoardFile
from onboard.run.boards import BoardProfile
from onboard.schema import PathText
from onboard.service.config import ServeFile
from tests.conftest import ROOT

TABLES = {"serve config": ServeFile, "simulate config": SimulateFile, "board profile": BoardProfile,
          "hil board profile": BoardFile}
_PATH = inspect.type_info(PathText)
_SKIPPED_BOUNDS = {2**63 - 1, -(2**63), 2**53}  # the limits of a machine integer: not a range a user sets


def _bounds(t: inspect.Type) -> list[str]:
    out = []
    for name, sign in (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<")):
        value = getattr(t, name, None)
        if value is None or value in _SKIPPED_BOUNDS or abs(value) >= 1e300:
            continue
        out.append(f"{sign} {value}" if isinstance(value, int) else f"{sign} {value:g}")
    if isinstance(t, inspect.FloatType) and any(abs(getattr(t, n) or 0) >= 1e300 for n in ("ge", "le", "lt", "gt")):
        out.append("finite")
    if getattr(t, "multiple_of", None):
        out.append("whole")
    low, high = getattr(t, "min_length", None), getattr(t, "max_length", None)
    if low or high:
        what = "length" if isinstance(t, inspect.StrType) else "items"
        out.append(f"{what} {low or 0} to {high}" if high else f"{what} >= {low}")
    return out


def _tagged(t: inspect.Type) -> list[inspect.StructType]:
    """The tables of a tagged union (one of several kinds of table, told by a key), or none."""
    if isinstance(t, inspect.UnionType) and all(isinstance(x, inspect.StructType) and x.tag for x in t.types):
        return list(t.types)
    return []


def describe(t: inspect.Type) -> tuple[str, str]:
    """A field's type as README writes it, and its range."""
    if _tagged(t):
        return "table", f"{_tagged(t)[0].tag_field} " + ", ".join(f"`{x.tag}`" for x in _tagged(t))
    if isinstance(t, inspect.UnionType):
        parts = [describe(x) for x in t.types if not isinstance(x, inspect.NoneType)]
        kind = " or ".join(p[0] for p in parts) + (" or null" if len(parts) < len(t.types) else "")
        return kind, "; ".join(p[1] for p in parts if p[1])
    if isinstance(t, inspect.StrType) and t == _PATH:
        return "path", ""
    if isinstance(t, (inspect.LiteralType, inspect.EnumType)):
        values = t.values if isinstance(t, inspect.LiteralType) else [m.value for m in t.cls]
        return "string", ", ".join(f"`{v}`" for v in values)
    if isinstance(t, (inspect.VarTupleType, inspect.ListType)):
        kind, inner = describe(t.item_type)
        return f"list of {kind}s", ", ".join([*_bounds(t), *([f"each {inner}"] if inner else [])])
    if isinstance(t, inspect.TupleType):
        kinds = {describe(x) for x in t.item_types}
        (kind, inner), = kinds
        return f"list of {len(t.item_types)} {kind}s", f"each {inner}" if inner else ""
    if isinstance(t, inspect.StructType):
        return "table", ""
    names = {inspect.IntType: "integer", inspect.FloatType: "number", inspect.StrType: "string",
             inspect.BoolType: "boolean", inspect.DateTimeType: "ISO 8601 time"}
    return names[type(t)], ", ".join(_bounds(t))


def _default(field: inspect.Field) -> str:
    if field.required:
        return "required"
    value = field.default
    if isinstance(value, msgspec.Struct) or (isinstance(value, tuple) and value
                                            and isinstance(value[0], msgspec.Struct)):
        return "built in"
    if isinstance(value, enum.Enum):
        value = value.value
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        value = int(value)
    return "null" if value is None else f"`{msgspec.json.encode(value).decode()}`"


def rows(schema: type) -> list[tuple[str, str, str, str]]:
    """(key, type, default, range) for every key of `schema`, sections first then their keys."""
    out = []

    def walk(info: inspect.StructType, prefix: str) -> None:
        for field in info.fields:
            key = f"{prefix}{field.encode_name}"
            kind, span = describe(field.type)
            out.append((f"`{key}`", kind, _default(field), span))
            inner = field.type
            if isinstance(inner, inspect.UnionType):
                inner = next(x for x in inner.types if not isinstance(x, inspect.NoneType))
            if isinstance(inner, (inspect.VarTupleType, inspect.ListType)) and isinstance(inner.item_type,
                                                                                        inspect.StructType):
                walk(inner.item_type, f"{key}[].")
            elif isinstance(inner, inspect.StructType):
                walk(inner, f"{key}.")
            item = inner.item_type if isinstance(inner, (inspect.VarTupleType, inspect.ListType)) else field.type
            sub = f"{key}[]." if item is not field.type else f"{key}."
            for table in _tagged(item):  # each kind of table: a row for its tag, then its keys
                out.append((f'`{sub}{table.tag_field} = "{table.tag}"`', "table", "", ""))
                walk(table, sub)

    walk(inspect.type_info(schema), "")
    return out


def readme_table(title: str) -> list[tuple[str, ...]]:
    """The rows (first four cells) of the README table that follows the line `<!-- keys: title -->`."""
    lines = (ROOT / "README.md").read_text().splitlines()
    start = lines.index(f"<!-- keys: {title} -->")
    table = []
    for line in lines[start + 3:]:
        if not line.startswith("|"):
            break
        cells = [c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", line.strip()[1:-1])]
        table.append(tuple(cells[:4]))
    return table


@pytest.mark.parametrize("title", TABLES)
def test_readme_tables_match_the_schemas(title):
    want, got = rows(TABLES[title]), readme_table(title)
    assert [r[0] for r in got] == [r[0] for r in want], "keys differ from the schema's"
    for have, should in zip(got, want):
        assert have == should, f"README's row of {should[0]} says {have}, the schema {should}"
