"""Training's checkpoints, and what training may write and delete in a model's folder.

After each epoch `Checkpoints.save` writes models/NAME/checkpoints/checkpoint.npz: the network's
weights, the optimizer's variables, the best weights on validation so far and the run's state
(its fingerprint, the epochs done, the history), as one file written atomically. The file is
made in memory (numpy's npz) and written by `write_bytes`, so a stop, a kill or a full disk at
any moment leaves the previous epoch's checkpoint whole, never a mix of two epochs, and no
library writes to the disk on its own. `Checkpoints.resume` puts all of it back into a freshly
built network, which then trains on as if it had never stopped.

Ownership, as the data stage has it: the pipeline deletes only files it wrote (the checkpoint,
what earlier versions kept here, its temporary files of dead processes), never a user's file
and never a folder that still holds one; and it writes nothing through a symbolic link inside
the model's folder (`check_model_folder`): a link planted there cannot send its files elsewhere.
The model's folder itself (models/NAME) may be a link: where it lives is the user's choice.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import zipfile
from pathlib import Path

import numpy as np

from pipeline.core import constants as C
from pipeline.core.artifacts import ensure_dir, remove_stale_temporaries, write_bytes
from pipeline.core.errors import PipelineError

CHECKPOINT_DIR = "checkpoints"
CHECKPOINT_FILE = "checkpoint.npz"
EARLIER_FILES = ("last.keras", "best.weights.h5", "state.json")   # what earlier versions kept in checkpoints/
HISTORY_FILE = "history.csv"
MODEL_FILES = (C.MODEL_FILE, "model.json", "model.onnx", HISTORY_FILE)   # what training writes in the model folder
REFERENCE_DIR = "reference"


def check_model_folder(folder: Path, own: bool = False) -> None:
    """Nothing training writes in `folder` is a symbolic link (nor `folder` itself when `own`, a folder
    inside the model's), and no file of it is a folder: one line naming the path otherwise."""
    paths = [folder / CHECKPOINT_DIR, *(folder / name for name in MODEL_FILES),
             *(folder / CHECKPOINT_DIR / name for name in (CHECKPOINT_FILE, *EARLIER_FILES))]
    for path in [folder] * own + paths:
        if path.is_symlink():
            raise PipelineError(f"{path} is a symbolic link (to {os.readlink(path)}); training writes only inside "
                                "the model's folder, never through a link: remove the link")
    for path in paths[1:]:
        if path.is_dir():
            raise PipelineError(f"{path} is a folder where training writes a file; move it away")
    if (folder / CHECKPOINT_DIR).exists() and not (folder / CHECKPOINT_DIR).is_dir():
        raise PipelineError(f"{folder / CHECKPOINT_DIR} is a file where training keeps its checkpoints; move it away")


class Checkpoints:
    """The checkpoint of one model's training (models/NAME/checkpoints/, or .../reference/checkpoints/)."""

    def __init__(self, folder: Path, fingerprint: str):
        self.folder, self.fingerprint = folder, fingerprint
        self.state = {"fingerprint": fingerprint, "epochs_done": 0, "best": None, "best_epoch": None,
                      "wait": 0, "stopped": False, "history": []}
        self.best_weights: list[np.ndarray] | None = None

    @property
    def path(self) -> Path:
        return self.folder / CHECKPOINT_FILE

    def resume(self, network) -> bool:
        """Put the checkpoint of an interrupted run with this fingerprint into `network` (built and
        compiled as that run's was): weights, optimizer, best weights and state. False, and nothing
        changed, when there is none, or it is of another run, damaged, or does not fit the network."""
        try:
            with np.load(self.path, allow_pickle=False) as archive:
                state = json.loads(bytes(archive["state"]).decode())
                if not isinstance(state, dict) or state.get("fingerprint") != self.fingerprint:
                    return False
                arrays = {key: [archive[f"{key}{i}"] for i in range(int(state["arrays"][key]))]
                          for key in ("weights", "optimizer", "best")}
        except (OSError, ValueError, KeyError, TypeError, EOFError, zipfile.BadZipFile):
            return False  # a damaged checkpoint only means starting over
        optimizer = network.optimizer
        optimizer.build(network.trainable_variables)
        if not (_fits(arrays["weights"], network.get_weights()) and _fits(arrays["best"] or arrays["weights"],
                                                                          network.get_weights())
                and _fits(arrays["optimizer"], [np.asarray(v) for v in optimizer.variables])):
            return False
        network.set_weights(arrays["weights"])
        for variable, value in zip(optimizer.variables, arrays["optimizer"]):
            variable.assign(value)
        self.state = {k: v for k, v in state.items() if k != "arrays"}
        self.best_weights = arrays["best"] or None
        return True

    def save(self, network, improved: bool) -> None:
        """This epoch's checkpoint, replacing the last one in one atomic write."""
        if improved:
            self.best_weights = network.get_weights()
        arrays = {"weights": network.get_weights(), "best": self.best_weights or [],
                  "optimizer": [np.asarray(v) for v in network.optimizer.variables]}
        state = {**self.state, "arrays": {key: len(values) for key, values in arrays.items()}}
        named = {f"{key}{i}": value for key, values in arrays.items() for i, value in enumerate(values)}
        buffer = io.BytesIO()
        np.savez(buffer, state=np.frombuffer(json.dumps(state).encode(), dtype=np.uint8), **named)
        ensure_dir(self.folder)
        write_bytes(self.path, buffer.getvalue())

    def clear(self) -> None:
        """Remove what the pipeline wrote here (this checkpoint, earlier versions' files, temporary
        files of dead runs), and the folder if nothing else is left in it: a user's file stays."""
        remove_stale_temporaries(self.folder)
        for name in (CHECKPOINT_FILE, *EARLIER_FILES):
            path = self.folder / name
            if path.is_file() and not path.is_symlink():
                path.unlink()
        with contextlib.suppress(OSError):
            self.folder.rmdir()   # only when empty


def _fits(arrays: list[np.ndarray], like: list[np.ndarray]) -> bool:
    return len(arrays) == len(like) and all(a.shape == b.shape for a, b in zip(arrays, like))
