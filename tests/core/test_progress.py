"""progress: bars on a terminal, or when asked; never in a pipe unless asked."""

import io

from pipeline.core import progress


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_bars_show_on_a_terminal_or_when_asked(monkeypatch):
    monkeypatch.delenv(progress.PROGRESS_VARIABLE, raising=False)
    monkeypatch.setattr("sys.stderr", io.StringIO())
    assert not progress.shown()
    monkeypatch.setattr("sys.stderr", Terminal())
    assert progress.shown()
    progress.set_shown(False)
    assert not progress.shown()
    progress.set_shown(True)
    monkeypatch.setattr("sys.stderr", io.StringIO())
    assert progress.shown()
    progress.set_shown(None)
    assert not progress.shown()


def test_a_bar_writes_to_stderr_only_when_shown(monkeypatch):
    err = io.StringIO()
    monkeypatch.setattr("sys.stderr", err)
    monkeypatch.setenv(progress.PROGRESS_VARIABLE, "0")
    with progress.bar(total=3, desc="quiet") as bar:
        bar.update(3)
    assert err.getvalue() == ""
    monkeypatch.setenv(progress.PROGRESS_VARIABLE, "1")
    with progress.bar(total=3, desc="loud", unit="clip") as bar:
        bar.update(3)
    assert "loud" in err.getvalue() and "3/3" in err.getvalue()


def test_plurals():
    assert [progress.plural(n, "worker") for n in (0, 1, 2, 1000)] == ["0 workers", "1 worker", "2 workers",
                                                                        "1,000 workers"]
