"""Training throughput: samples per second of the real network (pipeline.model.networks.build_network),
compiled as pipeline.model.training compiles it, trained on random spectrograms of the right shape.

Each step is Keras's compiled train step on one batch (`train_on_batch`, which returns only
when the step is done); the first step (tracing and compiling the graph) is excluded, then
steps run until `max_steps` or a time budget, whichever comes first. CPU always; GPU when
the Keras backend sees one (`tf.config.list_physical_devices("GPU")` under TensorFlow).
"""

from __future__ import annotations

import os
import time
from dataclasses import replace

import numpy as np

from bench.timing import load
from pipeline.core.measure import cores

STEPS, QUICK_STEPS = 300, 4            # steps after the first, at most
BUDGET_SECONDS, QUICK_BUDGET = 45.0, 5.0  # per model and device, after the first step
MIN_STEPS = 3
POOL_BATCHES = 4                       # distinct random batches, cycled


def models(ctx) -> dict:
    """{label: (ModelConfig, variant, batch size)}: the default config's model and the full-size one."""
    from pipeline.core.config import load_config

    cfg = load_config(ctx.repo / "configs" / "default.toml")
    out = {"default": (cfg, cfg.model)}
    if ctx.quick:  # a tiny network: the harness is what a quick run checks
        small = {"frame_units": (4, 4, 4)} if cfg.model.variant == "frames" else {"dense_units": (16,)}
        out = {"default": (cfg, replace(cfg.model, width=0.05, **small))}
        return out
    full = replace(cfg.model, width=1.0)
    if full != cfg.model:
        out["full"] = (cfg, full)
    return out


def measure(cfg, model_cfg, batch: int, max_steps: int, budget: float, device: str | None = None) -> dict:
    """Train steps (`train_on_batch`, the compiled train step) on random batches, timed one by one."""
    import keras

    from pipeline.model.encodings import make_encoding
    from pipeline.model.training import compile_network

    rng = np.random.default_rng(0)
    variant = model_cfg.variant
    hz = 440.0 * 2 ** ((rng.uniform(cfg.data.note_low, cfg.data.note_high, batch * POOL_BATCHES) - 69) / 12)
    encoding = make_encoding(replace(cfg, model=model_cfg), variant, hz)
    x = rng.standard_normal((batch * POOL_BATCHES, *_input_shape(model_cfg)), dtype=np.float32)
    y = encoding.encode(hz)
    if variant == "frames":   # one frame's target: (batch, 1 frame, candidates)
        y = y[:, None, :]
    batches = [(x[i:i + batch], y[i:i + batch]) for i in range(0, len(x), batch)]
    with _placed(device):
        keras.utils.set_random_seed(0)
        network = _build(model_cfg, variant, encoding.n_outputs)
        compile_network(network, cfg, variant)  # as pipeline.model.training compiles it
        started = time.perf_counter()
        marks: list[float] = []
        for step in range(max_steps + 1):
            network.train_on_batch(*batches[step % len(batches)])  # returns the loss: the step has finished
            marks.append(time.perf_counter())
            if len(marks) > MIN_STEPS and marks[-1] - marks[0] > budget:
                break
    steps = len(marks) - 1
    seconds = marks[-1] - marks[0]
    return {"variant": variant, "width": model_cfg.width, "params": int(network.count_params()),
            "batch_size": batch, "steps_timed": steps, "seconds": round(seconds, 6),
            "first_step_seconds": round(marks[0] - started, 3),
            "samples_per_second": round(steps * batch / seconds, 2) if steps > 0 else None,
            "backend": keras.backend.backend(), "precision": keras.mixed_precision.global_policy().name}


def _input_shape(model_cfg) -> tuple[int, ...]:
    """One example's input: a clip's spectrogram, or a frame model's log spectra around its frame."""
    from pipeline.core import constants as C

    if model_cfg.variant != "frames":
        return C.SPEC_SHAPE
    from pipeline.dsp.log_spectrum import GRID_BINS, WINDOWS
    from pipeline.model.frame_network import context_frames

    return (context_frames(model_cfg), len(WINDOWS), GRID_BINS)


def _placed(device: str | None):
    """tf.device(device) under TensorFlow; other Keras backends place the work themselves."""
    import contextlib

    import keras

    if device and keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        return tf.device(device)
    return contextlib.nullcontext()


def gpus() -> list[str]:
    """The GPUs the Keras backend sees."""
    import keras

    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        return [g.name for g in tf.config.list_physical_devices("GPU")]
    if backend == "torch":
        import torch

        return [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    if backend == "jax":
        import jax

        return [str(d) for d in jax.devices() if d.platform == "gpu"]
    return []


def _build(model_cfg, variant, n_outputs):
    from pipeline.model.networks import build_network

    if variant == "frames":
        from pipeline.model.frame_network import build_frame_network

        return build_frame_network(model_cfg)

    return build_network(model_cfg, variant, n_outputs, 0.0, 1.0)


def run(ctx) -> dict:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras

    visible = gpus()
    max_steps = QUICK_STEPS if ctx.quick else STEPS
    budget = QUICK_BUDGET if ctx.quick else BUDGET_SECONDS
    out = {"cores": cores(), "backend": keras.backend.backend(), "keras": keras.__version__,
           "gpus": visible, "load_average": [load()], "models": {}}
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        out["tensorflow"] = tf.__version__
    for label, (cfg, model_cfg) in models(ctx).items():
        batch = 8 if ctx.quick else cfg.train.batch_size
        keras.mixed_precision.set_global_policy("float32")
        cpu = measure(cfg, model_cfg, batch, max_steps, budget, "/CPU:0" if visible else None)
        gpu = None
        if visible:  # as pipeline.model.training runs on a GPU: mixed precision when the config asks for it
            keras.mixed_precision.set_global_policy("mixed_float16" if cfg.train.mixed_precision else "float32")
            gpu = measure(cfg, model_cfg, batch, STEPS, budget, "/GPU:0")
            keras.mixed_precision.set_global_policy("float32")
        out["models"][label] = {"cpu": cpu, "gpu": gpu,
                                "gpu_note": None if visible else "no GPU visible to TensorFlow on this machine"}
        out["load_average"].append(load())
    if "full" not in out["models"] and not ctx.quick:
        out["models"]["full"] = {"same_as": "default",
                                 "note": "configs/default.toml already trains the full-size model (width 1.0)"}
    return out
