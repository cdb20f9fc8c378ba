"""docs/dataset-formats.md's examples run, as written, on a real export of the tiny dataset."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[2] / "docs" / "dataset-formats.md"
BLOCKS = re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S)
NEEDS = {"datasets": "datasets", "webdataset": "webdataset", "torch": "torch"}


def test_the_page_has_examples():
    assert len(BLOCKS) >= 6


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_the_example_runs(index, exported, tmp_path, monkeypatch):
    code = BLOCKS[index]
    for module in NEEDS:
        if re.search(rf"^(import|from) {module}\b", code, re.M):
            pytest.importorskip(module)
    if "datasets" in code:
        import datasets

        monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path)
    cfg, out, _ = exported
    exec(compile(code.replace("exports/default", str(out)), f"{DOC.name}[{index}]", "exec"), {})
