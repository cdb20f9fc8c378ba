"""Training throughput on a GPU machine without TensorFlow: the project's Keras networks on the
jax backend (Keras 3 runs the same build_network there). Run from the repo root:
    KERAS_BACKEND=jax python3 bench/gpu_train.py   # writes $OUT/gpu_train.json or ./gpu_train.json"""
import json
import os
import sys
import time

os.environ.setdefault("KERAS_BACKEND", "jax")
sys.path.insert(0, os.getcwd())
import keras
import numpy as np

from pipeline.core import constants as C
from pipeline.core.config import load_config
from pipeline.model.encodings import BinEncoding
from pipeline.model.networks import build_network


def measure(cfg, variant, n_outputs, batch, steps=60, mixed=False):
    keras.mixed_precision.set_global_policy("mixed_bfloat16" if mixed else "float32")
    net = build_network(cfg.model, variant, n_outputs)
    loss = "categorical_crossentropy" if variant == "bins" else "mse"
    net.compile(optimizer=keras.optimizers.Adam(1e-3), loss=loss, jit_compile=True)
    x = np.random.default_rng(0).standard_normal((batch * 8, *C.SPEC_SHAPE)).astype("float32")
    y = np.eye(n_outputs, dtype="float32")[np.random.default_rng(1).integers(0, n_outputs, batch * 8)] \
        if variant == "bins" else np.random.default_rng(1).standard_normal((batch * 8, 1)).astype("float32")
    net.fit(x, y, batch_size=batch, epochs=1, verbose=0)  # compile
    reps = max(1, steps // 8)
    t = time.perf_counter()
    for _ in range(reps):
        net.fit(x, y, batch_size=batch, epochs=1, verbose=0)
    dt = time.perf_counter() - t
    return {"variant": variant, "width": cfg.model.width, "params": int(net.count_params()), "batch": batch,
            "mixed_bf16": mixed, "samples_per_s": round(batch * 8 * reps / dt, 1)}

out = []
default = load_config("configs/default.toml")
full = load_config("configs/seed.toml")
nb = BinEncoding.for_config(default).n_outputs
for cfg, variant in ((default, default.model.variant), (full, "reference"), (full, full.model.variant)):
    for mixed in (False, True):
        r = measure(cfg, variant, nb if variant == "bins" else 1, batch=cfg.train.batch_size, mixed=mixed)
        r["config"] = cfg.name
        print(r, flush=True)
        out.append(r)
json.dump(out, open(os.path.join(os.environ.get("OUT", "."), "gpu_train.json"), "w"), indent=1)
