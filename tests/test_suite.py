"""The suite itself: every slow entry names a test that exists (a renamed file would otherwise join the
fast part unnoticed), docs/testing.md lists the slow files, and no two test files share a name (pytest
would refuse the second, and its tests would not run)."""

from __future__ import annotations

import collections
import re

from tests.conftest import REPO, SLOW, is_slow


def test_every_slow_entry_names_a_test_that_exists():
    for key in SLOW:
        path, _, test = key.partition("::")
        assert (REPO / path).is_file(), key
        if test:
            assert re.search(rf"^def {re.escape(test)}\(", (REPO / path).read_text(), re.M), key


def test_a_slow_file_marks_each_of_its_tests_and_a_slow_test_only_itself():
    assert is_slow("tests/test_make.py::test_a_second_make_runs_nothing_and_touches_no_file")
    assert is_slow("tests/test_cli.py::test_sox_is_needed_only_by_builds_that_run_it")
    assert is_slow("tests/data/test_accuracy.py::test_real_instruments_follow_the_label[timgm-0]")
    assert not is_slow("tests/test_cli.py::test_missing_sox")
    assert not is_slow("tests/inference/test_frame_blocks.py::test_a_longer_hop_takes_the_nearest_10_ms_frame")


def test_the_testing_doc_lists_the_slow_files():
    doc = (REPO / "docs" / "testing.md").read_text()
    for key in SLOW:
        assert key.partition("::")[0] in doc, key


def test_no_two_test_files_share_a_name():
    names = collections.Counter(path.name for path in (REPO / "tests").rglob("test_*.py"))
    assert [name for name, count in names.items() if count > 1] == []
