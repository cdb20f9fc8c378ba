"""The model `pipeline predict` runs, for the prediction benchmark.

The package's shipped model (pipeline/models/default.onnx) when it is there; until then a
stream network of the shipped recipe's [model] (configs/shipped.toml, or configs/default.toml's
with variant "stream") with untrained weights, exported to ONNX the way `make train` exports
a stream model. Untrained weights cost exactly what trained ones do: the graph is the same.
"""

from __future__ import annotations

import contextlib
import io
import json
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from bench import REPO

RECIPES = (REPO / "configs" / "shipped.toml", REPO / "configs" / "default.toml")  # the first that exists
SEED = 0                       # the untrained weights are drawn, so the file is the same every run


@dataclass(frozen=True)
class Model:
    """The model the benchmark predicts with."""
    path: Path                 # the .onnx file (its .json sidecar beside it)
    shipped: bool              # True: the package's default model, so `pipeline predict` needs no --model
    description: dict          # what it is, for results.json

    @property
    def cli_args(self) -> list[str]:
        return [] if self.shipped else ["--model", str(self.path)]


def benchmark_model(folder: Path) -> Model:
    """The shipped default model, or an untrained stream model written into `folder`."""
    from pipeline.inference.predictor import default_model_path

    shipped = default_model_path()
    if shipped.is_file():
        variant = json.loads(shipped.with_suffix(".json").read_text())["variant"]
        return Model(shipped, True, {"source": "shipped", "variant": variant, "file": str(shipped),
                                     "bytes": shipped.stat().st_size})
    return build_untrained(folder)


def build_untrained(folder: Path) -> Model:
    """A stream network of the recipe's [model], random weights (seeded), as model.onnx + model.json."""
    from pipeline.core import constants as C
    from pipeline.core.artifacts import sha256_file
    from pipeline.core.backend import import_keras
    from pipeline.core.config import load_config
    from pipeline.model.encodings import encoding_to_dict, make_encoding
    from pipeline.model.export import export_stream, write_onnx
    from pipeline.model.metadata import write_metadata
    from pipeline.model.networks import build_network

    recipe = next(path for path in RECIPES if path.is_file())
    cfg = load_config(recipe)
    cfg = replace(cfg, model=replace(cfg.model, variant="stream"))
    encoding = make_encoding(cfg, "stream", None)
    keras = import_keras()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        keras.utils.set_random_seed(SEED)
        network = build_network(cfg.model, "stream", encoding.n_outputs)
        graph = export_stream(network, cfg.model)
    path = write_onnx(graph, Path(folder) / "model.onnx")
    meta = {"format": C.MODEL_FORMAT, "format_version": C.MODEL_FORMAT_VERSION, "variant": "stream",
            "scaling": cfg.features.scaling, "feature_dtype": cfg.features.dtype,
            "encoding": encoding_to_dict(encoding), "input_stats": {"mean": 0.0, "std": 1.0},
            "params": int(network.count_params()), "weights": f"untrained (seed {SEED}), for the benchmark"}
    write_metadata(path, meta, {"onnx": sha256_file(path)})
    return Model(path, False, {"source": f"untrained stream network of {recipe.relative_to(REPO)}'s [model]",
                               "variant": "stream",
                               "params": meta["params"], "bins": encoding.n_outputs, "bytes": path.stat().st_size,
                               "weights": "random (the same cost as trained)", "model_config": asdict(cfg.model)})
