"""TOML into frozen dataclasses: every value checked against its field's type and the caller's
rules (choices, ranges, unique entries, removed keys), every problem one PipelineError naming
the key. The pipeline's config (pipeline.core.config) and the experiments' settings both read
their files with it.
"""

from __future__ import annotations

import dataclasses
import math
import tomllib
import typing
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.core.errors import PipelineError


@dataclass(frozen=True)
class Rules:
    """What a file's keys must satisfy beyond their types; keys are dotted ("train.epochs")."""
    noun: str = "config key"                                      # how messages name a key
    choices: Mapping[str, set] = field(default_factory=dict)      # key -> the values it may take
    ranges: Mapping[str, tuple] = field(default_factory=dict)     # key -> (low, high), both allowed
    unique: frozenset = frozenset()                               # lists whose entries must differ
    program_numbers: frozenset = frozenset()                      # lists of names that also take integers
    removed: Mapping[str, str] = field(default_factory=dict)      # key of older files -> what replaced it
    check: Callable[[str, object], None] | None = None            # any further check of one value


def read_toml(path: str | Path, what: str, fix: str) -> dict:
    """A TOML file as a dict; one line naming the file for a missing, unreadable, non-UTF-8 or
    invalid one (`what`: "config file"; `fix`: where to find a good one)."""
    path = Path(path)
    if not path.is_file():
        raise PipelineError(f"{what} {path} not found; {fix}")
    try:
        return tomllib.loads(path.read_bytes().decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise PipelineError(f"{what} {path} is not UTF-8 text (byte {exc.start}); save it as UTF-8") from None
    except tomllib.TOMLDecodeError as exc:
        raise PipelineError(f"{what} {path} is not valid TOML ({exc}); fix the syntax") from None
    except OSError as exc:
        raise PipelineError(f"{what} {path} cannot be read ({exc.strerror}); {fix}") from None


def parse_override(text: str) -> tuple[list[str], object]:
    """'section.key=value' -> (['section', 'key'], value); value is read as TOML, else a string."""
    if "=" not in text:
        raise PipelineError(f"override {text!r} is not section.key=value; e.g. train.epochs=5")
    key, raw = text.split("=", 1)
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw
    keys = key.strip().split(".")
    if not all(keys):
        raise PipelineError(f"override {text!r} has an empty key; write section.key=value")
    return keys, value


def apply_overrides(raw: dict, overrides: Iterable[str], drop_prefix: str = "") -> dict:
    """Set each 'section.key=value' in the nested dict `raw` (in place; also returned)."""
    for text in overrides:
        keys, value = parse_override(text)
        if drop_prefix and keys[0] == drop_prefix and len(keys) > 1:
            keys = keys[1:]
        table = raw
        for k in keys[:-1]:
            table = table.setdefault(k, {})
            if not isinstance(table, dict):
                raise PipelineError(f"override {text!r}: {k} is not a section")
        table[keys[-1]] = value
    return raw


def build(cls, raw: dict, rules: Rules, prefix: str = ""):
    """An instance of the dataclass `cls` from a TOML table; nested dataclass fields are tables."""
    if not isinstance(raw, dict):
        raise PipelineError(f"{rules.noun} {prefix.rstrip('.')} must be a table")
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    for key in raw:
        if key not in known:
            where = f"{prefix}{key}"
            if where in rules.removed:
                raise PipelineError(f"{rules.noun} {where} was removed; {rules.removed[where]}")
            raise PipelineError(f"unknown {rules.noun} {where}; known keys here: {', '.join(sorted(known))}")
    values = {}
    for name in (f.name for f in dataclasses.fields(cls) if f.name in raw):
        hint, key = hints[name], f"{prefix}{name}"
        if dataclasses.is_dataclass(hint):
            if not isinstance(raw[name], dict):
                raise PipelineError(f"{rules.noun} {key} must be a [{name}] table")
            values[name] = build(hint, raw[name], rules, key + ".")
        else:
            values[name] = coerce(key, raw[name], hint, rules)
    return cls(**values)


def coerce(key: str, value, annotation, rules: Rules):
    """Check a TOML value against a field's annotation and the rules; return the typed value."""
    if typing.get_origin(annotation) is tuple:
        return _coerce_list(key, value, typing.get_args(annotation), rules)
    noun = rules.noun
    if key in rules.program_numbers and isinstance(value, int) and not isinstance(value, bool):
        value = str(value)  # a GM program number: resolved (and range-checked) with the names
    if annotation is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if annotation is bool and not isinstance(value, bool):
        raise PipelineError(f"{noun} {key} must be true or false, got {value!r}")
    if annotation is int and (isinstance(value, bool) or not isinstance(value, int)):
        raise PipelineError(f"{noun} {key} must be an integer, got {value!r}")
    if not isinstance(value, annotation):
        raise PipelineError(f"{noun} {key} must be a {annotation.__name__}, got {value!r}")
    if annotation is float and not math.isfinite(value):
        raise PipelineError(f"{noun} {key} must be a finite number, got {value!r}")
    _check_value(key, value, rules)
    return value


def _coerce_list(key: str, value, args: tuple, rules: Rules) -> tuple:
    """A list; tuple[float, float] annotations are ranges: two values, low first."""
    if not isinstance(value, (list, tuple)):
        raise PipelineError(f"{rules.noun} {key} must be a list, got {value!r}")
    items = tuple(coerce(key, v, args[0], rules) for v in value)
    if args[-1] is not Ellipsis and (len(items) != len(args) or items[0] > items[-1]):
        raise PipelineError(f"{rules.noun} {key} = {list(value)!r} must be a range: two numbers, the low one first")
    if key in rules.unique:
        seen = set()
        for item in items:
            norm = item.strip().lower() if isinstance(item, str) else item
            if norm in seen:
                raise PipelineError(f"{rules.noun} {key} lists {item!r} twice; list each entry once")
            seen.add(norm)
    return items


def _check_value(key: str, value, rules: Rules) -> None:
    if key in rules.choices and value not in rules.choices[key]:
        raise PipelineError(f"{rules.noun} {key} has value {value!r}; choose one of "
                            f"{', '.join(map(str, sorted(rules.choices[key])))}")
    if key in rules.ranges:
        low, high = rules.ranges[key]
        if not low <= value <= high:
            raise PipelineError(f"{rules.noun} {key} = {value!r} is out of range; use {low} to {high}")
    if rules.check is not None:
        rules.check(key, value)
