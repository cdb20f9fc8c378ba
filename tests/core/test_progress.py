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


def test_a_last_line_never_lands_on_a_bar_cut_short(monkeypatch):
    """A stop can land inside tqdm between a bar's text and its newline: the CLI's last line then
    starts on a new line; after a bar that closed, no blank line is added."""
    err = Terminal()
    monkeypatch.setattr("sys.stderr", err)
    bar = progress.bar(total=10, desc="render")
    bar.update(3)
    bar.refresh()                        # its text is on the line, no newline after it
    progress.end_line()
    err.write("interrupted\n")
    assert err.getvalue().splitlines()[-1] == "interrupted"
    bar.disable = True                   # as tqdm leaves a bar whose close was cut short
    err.truncate(0)
    err.seek(0)
    with progress.bar(total=2, desc="features") as closed:
        closed.update(2)
    progress.end_line()
    assert err.getvalue().endswith("\n") and not err.getvalue().endswith("\n\n")
