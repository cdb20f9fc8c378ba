"""Writing outputs safely, deleting only what the pipeline wrote, and saying what made them.

Every file is written under a temporary name in its final folder, `.NAME.PID.tmp.SUFFIX` (PID:
the writing process), every byte of it (a short write is continued, a failed one raises),
fsynced, renamed into place, and the folder fsynced: after Ctrl-C, a kill or a power loss a
final name holds the old file or the whole new one, never part of one. A full disk raises
PipelineError naming the file, and the temporary file is removed on any failure.

Ownership: the pipeline deletes a file only when it can tell that it wrote it. Temporary files
carry the pattern above, and `remove_stale_temporaries` removes those whose process is gone
(a killed build's) and nothing else; other files are deleted only through `remove_owned`, from
a ledger of what a stage wrote (the data stage's shard records list its clips), and only
inside the stage's own folder (`check_inside`). A file a user put there is never touched.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import hashlib
import json
import math
import os
import re
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

from pipeline.core.errors import DISK_FULL, PipelineError, disk_full

PACKAGES = ("numpy", "scipy", "pandas", "pyfluidsynth", "sox", "soxr", "midiutil", "mido",
            "soundfile", "tensorflow-cpu", "tensorflow", "keras", "librosa", "mir_eval")
_NEW_FILE = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_CLOEXEC", 0)
LIBC = ctypes.CDLL(None, use_errno=True) if sys.platform.startswith("linux") else None  # syncfs (tests watch it)

# --- temporary names ---------------------------------------------------------------------------
TEMPORARY_RE = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)\.tmp(?:\.[A-Za-z0-9]+)?$")
# what earlier versions wrote: mkstemp's 8 random characters, and the data stage's clip writer
_EARLIER_TEMPORARY_RES = (re.compile(r"^\.(?P<name>.+)\.[a-z0-9_]{8}\.tmp(?:\.[A-Za-z0-9]+)?$"),
                          re.compile(r"^\.(?P<name>.+\.wav)\.tmp$"))


def temporary_path(path: str | Path) -> str:
    """Where `path` is written before its rename: `.NAME.PID.tmp.SUFFIX` in the same folder (the
    suffix kept, for libraries that choose a format by it, like np.save or Keras)."""
    folder, name = os.path.split(os.fspath(path))
    return os.path.join(folder, f".{name}.{os.getpid()}.tmp{os.path.splitext(name)[1]}")


def temporary_owner(name: str) -> tuple[str, int | None] | None:
    """(the final name, the writer's pid or None if unknown) for a temporary file's name; None
    when `name` is not one of this package's temporary names."""
    match = TEMPORARY_RE.match(name)
    if match:
        return match["name"], int(match["pid"])
    for pattern in _EARLIER_TEMPORARY_RES:
        if match := pattern.match(name):
            return match["name"], None
    return None


def final_path(path: str | Path) -> Path:
    """The file a temporary file will become (for messages); `path` itself if it is not one."""
    path = Path(path)
    owner = temporary_owner(path.name)
    return path.with_name(owner[0]) if owner else path


def remove_stale_temporaries(folder: str | Path, recursive: bool = False) -> list[Path]:
    """Remove this package's temporary files in `folder` (and below, if `recursive`) whose
    writing process has ended: what a killed run left. Returns what it removed. Files of any
    other name, and those of a live process (a build running now), are left alone."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    removed = []
    for path in (folder.rglob(".*") if recursive else folder.glob(".*")):
        owner = temporary_owner(path.name)
        if owner is None or not path.is_file() or path.is_symlink() or _process_alive(owner[1]):
            continue
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
            removed.append(path)
    return removed


def _process_alive(pid: int | None) -> bool:
    if pid is None:
        return False
    if pid == os.getpid():
        return True  # never this process's own file: it may be writing it now
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    try:  # a zombie (killed, not yet reaped) writes nothing more
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] != "Z"
    except (OSError, IndexError):
        return True


# --- ownership ---------------------------------------------------------------------------------
def check_inside(root: str | Path, path: str | Path) -> Path:
    """`root / path`, if it lies inside `root` once `..` is resolved (an absolute `path`, or one
    that climbs out, raises PipelineError): every file a stage writes or deletes passes this."""
    root_norm = os.path.normpath(os.path.abspath(root))
    full = os.path.normpath(os.path.join(root_norm, path))
    if not full.startswith(root_norm + os.sep):
        raise PipelineError(f"{path} lies outside {root}; the pipeline writes and deletes only inside its own "
                            "folders: fix the config or the record that names it")
    return Path(full)


def remove_owned(root: str | Path, relpaths) -> int:
    """Delete the files at `relpaths` (relative to `root`), which a ledger says the pipeline wrote
    and which are no longer wanted; each must lie inside `root` (check_inside). Missing ones are
    skipped; folders are never removed. Returns how many files it deleted."""
    count = 0
    for relpath in relpaths:
        path = check_inside(root, relpath)
        if path.is_file() or path.is_symlink():
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
                count += 1
    return count


# --- writing -----------------------------------------------------------------------------------
def write_all(fd: int, data, path: str | Path) -> None:
    """os.write until every byte of `data` is written: a short write (a nearly full disk) is
    continued, and the next write's error (ENOSPC) raises PipelineError naming `path`."""
    view = memoryview(data).cast("B")
    try:
        while view:
            view = view[_written(os.write(fd, view)):]
    except OSError as exc:
        raise _translated(exc, path) from None


def pwrite_all(fd: int, data, position: int, path: str | Path) -> None:
    """os.pwrite of every byte of `data` at `position`, as write_all does."""
    view = memoryview(data).cast("B")
    try:
        while view:
            written = _written(os.pwrite(fd, view, position))
            view, position = view[written:], position + written
    except OSError as exc:
        raise _translated(exc, path) from None


def _written(count: int) -> int:
    if count <= 0:  # no progress: the disk took nothing
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    return count


def _translated(exc: OSError, path: str | Path) -> Exception:
    return disk_full(final_path(path)) if exc.errno in DISK_FULL else exc


def write_bytes(path: str | Path, data: bytes, sync: bool = True) -> None:
    """Write `data` to `path` atomically (see the module's docstring). `sync=False` skips the two
    fsyncs, for many small files that are synced in one go afterwards (sync_files): how the data
    stage writes its clips in workers before the parent syncs them and writes the shard's record."""
    tmp = temporary_path(path)
    try:
        fd = os.open(tmp, _NEW_FILE, 0o666)
    except FileNotFoundError:
        ensure_dir(os.path.dirname(tmp) or ".")
        fd = os.open(tmp, _NEW_FILE, 0o666)
    try:
        try:
            write_all(fd, data, path)
            if sync:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(exc, OSError):
            raise _translated(exc, path) from None
        raise
    if sync:
        fsync_folder(os.path.dirname(tmp) or ".")


class AtomicFile:
    """A file written under its temporary name beside `path` and renamed into place by commit()
    (fsynced first, its folder after). Leaving a `with` block without commit() (an error, an
    interrupt) removes the temporary file. For writers that fill a file in pieces."""

    def __init__(self, path: str | Path, sync: bool = True):
        self.path, self.sync = Path(path), sync
        ensure_dir(self.path.parent)
        self.tmp = Path(temporary_path(self.path))
        os.close(os.open(self.tmp, _NEW_FILE, 0o666))  # 0o666 less the umask, like any new file
        self.committed = False

    def commit(self) -> None:
        try:
            if self.sync:
                fsync_file(self.tmp)
            os.replace(self.tmp, self.path)
        except OSError as exc:
            self.discard()
            raise _translated(exc, self.path) from None
        self.committed = True
        if self.sync:
            fsync_folder(self.path.parent)

    def discard(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.tmp)

    def __enter__(self) -> AtomicFile:
        return self

    def __exit__(self, *exc_info) -> None:
        if not self.committed:
            self.discard()


@contextlib.contextmanager
def atomic_path(path: str | Path, sync: bool = True):
    """Yield a temporary path beside `path` for any writer (np.save, to_csv, Keras); rename it to
    `path` only if the block succeeds. A full disk inside the block raises PipelineError."""
    with AtomicFile(path, sync) as file:
        try:
            yield file.tmp
        except OSError as exc:
            raise _translated(exc, path) from None
        file.commit()


def write_text(path: str | Path, text: str) -> None:
    write_bytes(path, text.encode())


def write_json(path: str | Path, obj) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def write_if_changed(path: str | Path, data: bytes | str, sync: bool = True) -> bool:
    """Write `data` atomically (`write_bytes`) unless the file holds exactly these bytes already, so
    make sees an unchanged mtime; a missing, garbled or unreadable file is written anew. True if written."""
    data = data.encode() if isinstance(data, str) else data
    try:
        with open(path, "rb") as fh:
            if fh.read(len(data) + 1) == data:
                return False
    except OSError:
        pass
    write_bytes(path, data, sync=sync)
    return True


class NpyRows:
    """An open .npy file (the header np.save writes, then the rows) filled by row blocks at their
    offsets, in any order, by this process or by workers that open it by name (`position` says
    where): no memory map, and no rows through one process. Its blocks are allocated at once, so
    a disk too small fails before any work."""

    def __init__(self, fh, path: str | Path, dtype, shape: tuple[int, ...]):
        import numpy as np

        np.lib.format.write_array_header_1_0(fh, {"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)),
                                                  "fortran_order": False, "shape": shape})
        fh.flush()
        self.fd, self.path, self.dtype, self.offset = fh.fileno(), path, np.dtype(dtype), fh.tell()
        self.row_bytes = math.prod(shape[1:]) * self.dtype.itemsize
        allocate(self.fd, self.offset + shape[0] * self.row_bytes, path)

    def position(self, start: int) -> int:
        return self.offset + start * self.row_bytes

    def write(self, start: int, rows) -> None:
        import numpy as np

        pwrite_all(self.fd, np.ascontiguousarray(rows, dtype=self.dtype), self.position(start), self.path)


def allocate(fd: int, size: int, path: str | Path) -> None:
    """Size a file being written in pieces and reserve its blocks, so that a disk too small
    raises PipelineError (naming `path`) before any work, not halfway."""
    os.ftruncate(fd, size)
    try:
        os.posix_fallocate(fd, 0, size)
    except AttributeError:  # not on this platform: the writes will tell
        pass
    except OSError as exc:
        if exc.errno in DISK_FULL:
            raise disk_full(final_path(path)) from None
        if exc.errno not in (errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS):  # a file system without it
            raise


def read_json(path: str | Path) -> dict | None:
    """A JSON object from a file (a record, a stamp), or None when it is missing, empty or garbled."""
    try:
        value = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def fsync_file(path: str | Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_folder(folder: str | Path) -> None:
    """Make a rename in `folder` durable (a file's fsync does not cover its name)."""
    try:
        fsync_file(folder)
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.EBADF):  # a file system without directory fsync
            raise


def sync_filesystem(path: str | Path) -> None:
    """Make everything written so far on the file system that holds `path` durable, renames
    included (Linux's syncfs; os.sync elsewhere): how many small files written with sync=False
    (a shard's clips) are made durable before the record that lists them is written. Measured
    here: 3.8 ms a clip with an fsync each, 0.06-0.2 ms a clip with one syncfs per 96-clip shard."""
    fd = os.open(path, os.O_RDONLY)
    try:
        if LIBC is None or LIBC.syncfs(fd) != 0:
            os.sync()
    finally:
        os.close(fd)


def sync_files(paths) -> None:
    """fsync each file, then each of their folders once: a few files written with sync=False made
    durable together (for many small ones, sync_filesystem is far cheaper)."""
    folders = set()
    for path in paths:
        fsync_file(path)
        folders.add(os.path.dirname(os.fspath(path)) or ".")
    for folder in sorted(folders):
        fsync_folder(folder)


def ensure_dir(path: str | Path) -> Path:
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        if exc.errno in DISK_FULL:
            raise disk_full(path) from None
        raise PipelineError(f"cannot create output folder {path} ({exc.strerror}); "
                            "choose a writable location or fix its permissions") from None
    if not os.access(path, os.W_OK):
        raise PipelineError(f"output folder {path} is not writable; fix its permissions or choose another")
    return path


# --- hashes ------------------------------------------------------------------------------------
def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def fingerprint(payload) -> str:
    """sha256 of a JSON-able value (keys sorted): the one hash of what a stage's output depends
    on (a shard's notes and settings, the features' inputs, a training run's config and data)."""
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def sha256_file(path: str | Path) -> str:
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


# --- provenance --------------------------------------------------------------------------------
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
    try:  # its libFLAC writes the FLAC clips: the soundfile wheel bundles both
        import soundfile

        versions["libsndfile"] = soundfile.__libsndfile_version__
    except (ImportError, OSError):
        versions["libsndfile"] = None
    try:
        import fluidsynth  # optional at import time

        major, minor, micro = (fluidsynth.c_int() for _ in range(3))
        fluidsynth.fluid_version(major, minor, micro)
        versions["libfluidsynth"] = f"{major.value}.{minor.value}.{micro.value}"
    except (ImportError, AttributeError, OSError):
        versions["libfluidsynth"] = None
    return versions
