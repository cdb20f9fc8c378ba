"""imports: the package's import graph read from the source, and the Makefile's stage sources made from
it, held against Python's own modulefinder (which follows the bytecode's imports, those inside functions
too): a module a stage imports that is missing from its make prerequisites would let make skip a stage
whose code changed."""

from __future__ import annotations

import modulefinder
import re
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.core.imports import stage_sources
from tests.conftest import REPO

MAKEFILE = (REPO / "Makefile").read_text()


def stage_entries() -> dict[str, str]:
    """STAGE_ENTRIES of the Makefile: {stage: entry module}."""
    block = re.search(r"^STAGE_ENTRIES :=((?:.*\\\n)*.*)$", MAKEFILE, re.M).group(1)
    return dict(re.findall(r"(\w+)=(pipeline[\w.]+)", block))


class PackageOnly(modulefinder.ModuleFinder):
    """modulefinder over the package's own modules alone (numpy, TensorFlow and the rest are not read)."""

    def import_module(self, partname, fqname, parent):
        if fqname != "pipeline" and not fqname.startswith("pipeline."):
            return None
        return super().import_module(partname, fqname, parent)


def imported_files(entry: str) -> set[str]:
    """The package files Python would load for `entry`, found by modulefinder, relative to the repository."""
    finder = PackageOnly(path=[str(REPO)])
    path = REPO / Path(*entry.split(".")).with_suffix(".py")
    finder.run_script(str(path))
    files = {str(Path(m.__file__).resolve().relative_to(REPO)) for m in finder.modules.values() if m.__file__}
    return files | {str(path.relative_to(REPO))}


def test_the_makefile_names_the_five_stages():
    assert stage_entries() == {"data": "pipeline.data.dataset", "features": "pipeline.data.features",
                               "train": "pipeline.model.training", "report": "pipeline.report.reporting",
                               "export": "pipeline.formats.export"}


@pytest.mark.parametrize("stage, entry", sorted(stage_entries().items()))
def test_a_stages_sources_hold_every_module_python_finds_it_importing(stage, entry):
    found = imported_files(entry)
    assert len(found) > 10 and "pipeline/core/config.py" in found
    assert found <= set(stage_sources([entry])), sorted(found - set(stage_sources([entry])))


def test_the_makefiles_source_lists_hold_them_too():
    """What make includes (.make/sources.mk, written by the Makefile's own command line) lists, per stage,
    every file modulefinder finds; the data stage's does not list the report's code."""
    command = re.search(r"\$\(PYTHON\) -m (pipeline\.core\.imports) \$\(STAGE_ENTRIES\)", MAKEFILE)
    assert command, "the Makefile no longer makes its source lists with pipeline.core.imports"
    entries = stage_entries()
    out = subprocess.run([sys.executable, "-m", command.group(1), *(f"{s}={e}" for s, e in entries.items())],
                         cwd=REPO, capture_output=True, text=True, check=True).stdout
    lists = {name.lower().removesuffix("_src"): set(files.split())
             for name, files in re.findall(r"^(\w+_SRC) := (.*)$", out, re.M)}
    assert set(lists) == set(entries)
    for stage, entry in entries.items():
        assert imported_files(entry) <= lists[stage], stage
        assert re.search(rf"^\$\(\w+\)/\S+: .*\$\({stage.upper()}_SRC\)", MAKEFILE, re.M), \
            f"no rule of the Makefile depends on $({stage.upper()}_SRC)"
    assert "pipeline/report/reporting.py" not in lists["data"]
