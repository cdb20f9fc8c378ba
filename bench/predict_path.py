"""The predict path for the prediction benchmark: `pipeline.prediction.predict_from_file` with a
Predictor of the default config's architecture (untrained weights: the speed is the same)."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from bench import REPO


def predictor(quick: bool):
    """A pipeline.model.Predictor around a fresh network of configs/default.toml's model."""
    from dataclasses import replace

    from pipeline.config import load_config
    from pipeline.model import Predictor, build_network, encoding_to_dict, make_encoding

    cfg = load_config(REPO / "configs" / "default.toml")
    model_cfg = replace(cfg.model, width=0.05, dense_units=(16,)) if quick else cfg.model
    hz = np.array([110.0, 440.0, 1760.0])
    encoding = make_encoding(replace(cfg, model=model_cfg), model_cfg.variant, hz)
    network = build_network(model_cfg, model_cfg.variant, encoding.n_outputs)
    meta = {"encoding": encoding_to_dict(encoding), "scaling": cfg.features.scaling, "variant": model_cfg.variant}
    return Predictor(network, meta), model_cfg


def measure(audio: np.ndarray, folder: str, quick: bool, reps: int) -> dict:
    import soundfile as sf

    from pipeline import constants as C
    from pipeline.prediction import PREDICT_HOP_SECONDS, SUMMARY_HOP_SECONDS, predict_from_file

    model, model_cfg = predictor(quick)
    warm = Path(folder) / "warm.wav"
    sf.write(str(warm), audio[: C.SAMPLE_RATE // 2], C.SAMPLE_RATE, subtype="PCM_16")
    predict_from_file(warm, model)  # traces the network's predict function
    wav = Path(folder) / "notes.wav"
    best, frames = float("inf"), 0
    for _ in range(reps):
        start = time.perf_counter()
        t, _, _ = predict_from_file(wav, model)
        best = min(best, time.perf_counter() - start)
        frames = len(t)
    seconds = len(audio) / C.SAMPLE_RATE
    start = time.perf_counter()  # `pipeline predict --summary`: a few windows per second
    predict_from_file(wav, model, hop=SUMMARY_HOP_SECONDS)
    extra = {"summary_hop_seconds": round(SUMMARY_HOP_SECONDS, 4),
             "summary_x_realtime": round(seconds / (time.perf_counter() - start), 2)}
    return {**extra, "predict_seconds": round(best, 4), "predict_x_realtime": round(seconds / best, 3),
            "predict_frames": frames, "predict_hop_seconds": PREDICT_HOP_SECONDS,
            "predict_model": {"variant": model_cfg.variant, "width": model_cfg.width,
                              "weights": "untrained (same cost as trained)"}}
