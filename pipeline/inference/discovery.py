"""Which audio files a prediction reads: files, folders (searched recursively), glob patterns and
`-`, standard input.

`audio_inputs(["notes/", "take*.wav", "song.flac"])` lists the files in order: a folder's audio
files sorted by path, a pattern's matches sorted (`**` reaches into subfolders), a file as it is
(a missing one is kept, so that its own one-line error names it). A file reached twice counts
once. `STDIN` stands for the audio arriving on standard input (`read_stdin` saves it to a file).
"""

from __future__ import annotations

import glob
import os
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path

from pipeline.core.errors import PipelineError

STDIN = "-"
GLOB_CHARACTERS = "*?["
# what a folder is searched for: the formats libsndfile reads (dsp/audio.py reads any of them)
AUDIO_SUFFIXES = frozenset({".wav", ".wave", ".flac", ".mp3", ".ogg", ".oga", ".opus", ".aif", ".aiff",
                            ".aifc", ".au", ".snd", ".caf", ".w64", ".rf64"})
STDIN_NAME = "stdin"         # the file standard input is saved as (stdin.f0.csv beside it, if asked)


def is_audio_file(path: Path) -> bool:
    return path.suffix.lower() in AUDIO_SUFFIXES and not path.name.startswith(".")


def folder_files(folder: Path) -> list[Path]:
    """The audio files under `folder` and its subfolders, sorted by path (hidden ones left out)."""
    found = [Path(root) / name for root, dirs, names in os.walk(folder, followlinks=True)
             for name in names if is_audio_file(Path(name))]
    return sorted(found, key=lambda p: p.relative_to(folder).parts)


def audio_inputs(inputs: Iterable[str | Path]) -> list[Path | str]:
    """The files `inputs` name, in order (STDIN kept as it is); PipelineError for a folder with no
    audio file or a pattern with no match (a missing file is left for its own error)."""
    files: list[Path | str] = []
    for item in map(str, inputs):
        if item == STDIN:
            found: list[Path | str] = [STDIN]
        elif os.path.isdir(item):
            found = list(folder_files(Path(item)))
            if not found:
                raise PipelineError(f"folder {item} holds no audio file ({', '.join(sorted(AUDIO_SUFFIXES))})")
        elif any(ch in item for ch in GLOB_CHARACTERS) and not os.path.exists(item):
            matches = sorted(glob.glob(os.path.expanduser(item), recursive=True))
            found = [Path(m) for m in matches if os.path.isfile(m)]
            if not found:
                raise PipelineError(f"no file matches {item}; check the pattern (quote it so the shell leaves it)")
        else:
            found = [Path(item)]
        files.extend(found)
    return _unique(files)


def _unique(files: list[Path | str]) -> list[Path | str]:
    seen: set[str] = set()
    kept = []
    for file in files:
        key = file if file == STDIN else os.path.realpath(file)
        if key not in seen:
            seen.add(key)
            kept.append(file)
    return kept


def read_stdin(stream, folder: Path | None = None) -> Path:
    """Save the bytes of `stream` (a binary file, e.g. sys.stdin.buffer) as FOLDER/stdin, a file
    any reader takes (libsndfile knows the format from its header); PipelineError if empty."""
    folder = Path(folder) if folder is not None else Path(tempfile.mkdtemp(prefix="pipeline-stdin-"))
    path = folder / STDIN_NAME
    with open(path, "wb") as out:
        shutil.copyfileobj(stream, out)
    if path.stat().st_size == 0:
        raise PipelineError("standard input is empty; pipe audio into it, e.g. from sox or ffmpeg as WAV")
    return path
