"""Writing outputs safely and saying what made them.

Every file is written to a temporary name in its final folder and renamed into place, so
an interrupted build never leaves a half-written file that make would take as done.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from importlib import metadata
from pathlib import Path

from pipeline.errors import PipelineError

PACKAGES = ("numpy", "scipy", "pandas", "pyfluidsynth", "sox", "soxr", "midiutil", "mido",
            "soundfile", "tensorflow-cpu", "tensorflow", "keras", "librosa", "mir_eval")


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _current_umask()


@contextlib.contextmanager
def atomic_path(path: str | Path):
    """Yield a temporary path beside `path`; rename it to `path` only if the block succeeds."""
    path = Path(path)
    ensure_dir(path.parent)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp" + path.suffix)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; outputs get the usual permissions
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_bytes(path: str | Path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text(path: str | Path, text: str) -> None:
    write_bytes(path, text.encode())


def write_json(path: str | Path, obj) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def write_if_changed(path: str | Path, text: str) -> bool:
    """Write only when the content differs, so make sees an unchanged mtime otherwise."""
    path = Path(path)
    if path.is_file() and path.read_text() == text:
        return False
    write_text(path, text)
    return True


def ensure_dir(path: str | Path) -> Path:
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise PipelineError(f"cannot create output folder {path} ({exc.strerror}); "
                            "choose a writable location or fix its permissions") from None
    if not os.access(path, os.W_OK):
        raise PipelineError(f"output folder {path} is not writable; fix its permissions or choose another")
    return path


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def fingerprint(payload) -> str:
    """sha256 of a JSON-able value (keys sorted): the one hash of what a stage's output depends
    on (a shard's notes and settings, the features' inputs, a training run's config and data)."""
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _command_version(cmd: list[str]) -> str | None:
    if shutil.which(cmd[0]) is None:
        return None
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return None
    lines = (out.stdout or out.stderr).strip().splitlines()
    return lines[0].strip() if lines else None


def tool_versions() -> dict:
    """Versions of FluidSynth, sox and the Python packages that shape the outputs."""
    versions: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    versions["sox_binary"] = _command_version(["sox", "--version"])
    try:
        import fluidsynth  # optional at import time

        major, minor, micro = (fluidsynth.c_int() for _ in range(3))
        fluidsynth.fluid_version(major, minor, micro)
        versions["libfluidsynth"] = f"{major.value}.{minor.value}.{micro.value}"
    except (ImportError, AttributeError, OSError):
        versions["libfluidsynth"] = None
    return versions
