"""docs/configuration.md, written from the typed config itself so that it cannot drift: every key
of every section (pipeline.core.config's dataclasses), its built-in value, the default config's
value where it differs, the values it may take (choices and ranges: the rules load_config
enforces), and its meaning (the comments beside and above the field, the section's docstring).

`pipeline config --docs` prints it; a test checks that the committed file is what this writes.
"""

from __future__ import annotations

import ast
import dataclasses
import io
import json
import tokenize
import typing
from pathlib import Path

from pipeline.core import config as config_module
from pipeline.core.config import Config, load_config

INTRO = """\
# Configuration

<!-- Written by `pipeline config --docs > docs/configuration.md` from pipeline/core/config.py
     (the dataclasses, their comments, choices and ranges); tests/core/test_config_docs.py checks
     that this file is up to date. Edit the code's comments, not this file. -->

One typed config drives every stage: a TOML file, plus `--set section.key=value` overrides
(`make SET='section.key=value ...'` passes them on). Unknown keys, wrong types, non-finite
numbers and out-of-range values are refused with a line naming the key.

- **Which file.** `--config FILE` (make: `CONFIG=FILE`); without one, the **default config**,
  `pipeline/configs/default.toml` (shipped in the package; `configs/default.toml` in a checkout
  links to it): make, `pipeline data|features|train|report|check` and `pipeline.load_config()`
  all use the same one. `load_config(None)` gives the built-in values below, what every key left
  out of a file takes. `pipeline config [--config FILE] [--set ...]` prints the config a command
  would use, as TOML.
- **Outputs.** `data/NAME/`, `models/NAME/` and `reports/NAME/` under `root`, NAME being the
  file's name without `.toml` (or its `name` key). The config is saved beside what it made.
- **Paths.** A relative path written in a config file (`data.soundfonts`, `root`) is relative
  to the file's folder, so a config means the same from any working folder; in `--set`, to the
  current folder. A soundfont named by **file name alone** (`"FluidR3_GM.sf2"`) is looked for in
  the folders of `PIPELINE_SOUNDFONT_PATH` (separated by `:`), then `/usr/share/sounds/sf2`,
  `/usr/share/sounds/sf3` and `/usr/share/soundfonts`. Where a font lives is no part of a dataset:
  clips are filed by the font's file name and its content is known by its sha256.
- **Other configs** under `configs/`: `heldout.toml` (clean notes of the held-out font, for
  `pipeline evaluate`), `large.toml` and `shipped.toml` (about 100,000 clips; the shipped model's
  recipe), `seed.toml` (the original experiment's full scale), `experiments.toml` (its own
  `[experiments]` table: see [experiments.md](experiments.md)).

Below, **built-in** is the value a key left out takes; **default.toml** is the default config's
value where it differs.
"""


def _comments(source: str) -> dict[int, str]:
    """{line number: comment text} of every comment in the source."""
    found = {}
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.COMMENT:
            found[token.start[0]] = token.string.lstrip("#").strip()
    return found


def field_notes(cls: type) -> dict[str, str]:
    """{field: its meaning}: the comment on the field's line, after the comment lines just above it."""
    source = Path(config_module.__file__).read_text()
    comments = _comments(source)
    lines = source.splitlines()
    tree = ast.parse(source)
    node = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == cls.__name__)
    notes = {}
    for item in node.body:
        if not isinstance(item, ast.AnnAssign):
            continue
        above, row = [], item.lineno - 1
        while row >= 1 and lines[row - 1].strip().startswith("#"):
            above.insert(0, comments[row])
            row -= 1
        beside = comments.get(item.lineno, "")
        if item.end_lineno != item.lineno:  # a value over several lines: its last line's comment
            beside = comments.get(item.end_lineno, beside)
        notes[item.target.id] = " ".join(part for part in [*above, beside] if part)
    return notes


def _value(value) -> str:
    if isinstance(value, tuple):
        value = list(value)
    return f"`{json.dumps(value)}`"


def _allowed(key: str, hint) -> str:
    rules = config_module.RULES
    if key in rules.choices:
        return ", ".join(f"`{c}`" for c in sorted(rules.choices[key], key=str))
    if key in rules.ranges:
        low, high = rules.ranges[key]
        return f"{low} to {high}"
    if hint is bool:
        return "`true`, `false`"
    return ""


def sections() -> list[tuple[str, type]]:
    hints = typing.get_type_hints(Config)
    return [(f.name, hints[f.name]) for f in dataclasses.fields(Config) if dataclasses.is_dataclass(hints[f.name])]


def _escape(text: str) -> str:
    return text.replace("|", "\\|")


def _rows(prefix: str, cls: type, builtin, default) -> list[str]:
    notes = field_notes(cls)
    hints = typing.get_type_hints(cls)
    rows = []
    for f in dataclasses.fields(cls):
        key = f"{prefix}{f.name}"
        ours, theirs = getattr(builtin, f.name), getattr(default, f.name)
        differs = _value(theirs) if theirs != ours else ""
        allowed = _escape(_allowed(key, hints[f.name]))
        rows.append(f"| `{key}` | {_escape(_value(ours))} | {_escape(differs)} | {allowed} "
                    f"| {_escape(notes.get(f.name, ''))} |")
    return rows


def configuration_markdown() -> str:
    """The whole of docs/configuration.md."""
    builtin, default = load_config(None), load_config()
    out = [INTRO, "## Top level\n", "| key | built-in | default.toml | allowed | meaning |", "|---|---|---|---|---|"]
    top = [f for f in dataclasses.fields(Config) if not dataclasses.is_dataclass(typing.get_type_hints(Config)[f.name])]
    notes = field_notes(Config)
    for f in top:
        ours = getattr(builtin, f.name)
        theirs = getattr(default, f.name)
        allowed = "letters, digits, `_`, `.`, `-`" if f.name == "name" else ""
        out.append(f"| `{f.name}` | {_value(ours)} | {_value(theirs) if theirs != ours else ''} | {allowed} "
                   f"| {_escape(notes.get(f.name, ''))} |")
    for name, cls in sections():
        doc = (cls.__doc__ or "").strip()
        generated = doc.startswith(f"{cls.__name__}(")  # dataclasses' own signature, not a docstring
        out += ["", f"## `[{name}]`", ""]
        if doc and not generated:
            out += [" ".join(doc.split()), ""]
        out += ["| key | built-in | default.toml | allowed | meaning |", "|---|---|---|---|---|"]
        out += _rows(f"{name}.", cls, getattr(builtin, name), getattr(default, name))
    return "\n".join(out) + "\n"
