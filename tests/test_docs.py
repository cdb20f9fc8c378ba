"""The README starts where users start: short, and every section that moved out of it is one link
away; every relative link in the README and docs/ leads to a file."""

import re

from tests.conftest import REPO

README_LIMIT = 12 * 1024
LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")
# files other changes are writing now: a link to them may run ahead of the file
PENDING = {"docs/reliability.md", "docs/testing.md", "docs/dataset-formats.md"}
# the sections the README had before it was split, and the file each now lives in
MOVED = {
    "The dataset": "docs/dataset.md", "Files": "docs/dataset.md", "Splits": "docs/dataset.md",
    "Reproducible, incremental, resumable": "docs/dataset.md",
    "Reading a dataset from your own code": "docs/dataset.md",
    "Labels you can trust": "docs/labels.md", "Features, model and training": "docs/model.md",
    "Report": "docs/evaluation.md", "Results": "docs/evaluation.md",
    "Evaluate on your own audio": "docs/evaluation.md",
    "Configuration": "docs/configuration.md", "Experiments": "docs/experiments.md",
    "Benchmarks": "docs/benchmarks.md", "Scaling out": "docs/scaling.md", "Predict": "docs/prediction.md",
    "Code map": "docs/CODE_MAP.md", "Tests": "docs/testing.md",
    "What happens when things go wrong": "docs/reliability.md",
}


def links(path):
    return {(path.parent / target).resolve() for target in LINK.findall(path.read_text())
            if "://" not in target}


def test_the_readme_is_short_and_links_every_moved_section():
    readme = REPO / "README.md"
    assert readme.stat().st_size <= README_LIMIT
    linked = links(readme)
    for heading, file in MOVED.items():
        assert (REPO / file).resolve() in linked, f"README does not link {file} ({heading})"
        if file in PENDING and not (REPO / file).exists():
            continue
        text = (REPO / file).read_text()
        assert heading in text, f"{file} lacks the section {heading!r}"
    for doc in (REPO / "docs").glob("*.md"):
        assert doc.resolve() in linked, f"README does not link {doc.relative_to(REPO)}"


def test_every_relative_link_leads_to_a_file():
    for path in [REPO / "README.md", REPO / "CHANGELOG.md", REPO / "soundfonts" / "README.md",
                 *(REPO / "docs").glob("*.md")]:
        for target in links(path):
            pending = target.relative_to(REPO).as_posix() in PENDING if target.is_relative_to(REPO) else False
            assert target.exists() or pending, f"{path.relative_to(REPO)} links {target}, which does not exist"


def test_the_project_says_its_licence_how_to_cite_it_and_what_changed():
    assert (REPO / "LICENSE").read_text().startswith("MIT License")
    assert "cff-version:" in (REPO / "CITATION.cff").read_text()
    assert "## Unreleased" in (REPO / "CHANGELOG.md").read_text()
