"""The deep-learning backend, imported late and quietly: Keras (and TensorFlow behind it).

Importing TensorFlow costs seconds, so nothing imports it until a network is built, trained
or loaded in Keras; prediction with a stream model never does (pipeline.inference.predictor).
"""

from __future__ import annotations

import os
import sys

from pipeline.core.errors import silenced_stderr


def import_keras():
    """Keras, imported on first use.

    While its libraries load, TensorFlow writes a oneDNN notice and absl's "All log messages
    before absl::InitializeLog() is called..." straight to file descriptor 2, before any log
    level applies; they would bury our one-line output. Only the import is silenced: an import
    that fails still raises, and TensorFlow's warnings and errors afterwards still show
    (TF_CPP_MIN_LOG_LEVEL=2 keeps only its info lines off)."""
    if "keras" not in sys.modules:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        with silenced_stderr():
            import keras  # noqa: F401  (imported for sys.modules)
    return sys.modules["keras"]
