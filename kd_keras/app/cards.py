"""Model cards: a JSON file beside each saved model saying what it is.

The module loads no TensorFlow (the command line checks the card it will
write before loading it); a card is made of a model, once TensorFlow and
Keras are loaded.
"""

import datetime
import json
import os
import platform
import sys
from pathlib import Path

import numpy as np

from kd_keras.files import atomic_path


def card_path(model_path):
    """`student.h5` -> `student.h5.json`: one card per saved file, so that
    `student.keras` and `student.h5` each have their own."""
    path = Path(model_path)
    return path.with_name(path.name + ".json")


def architecture(model):
    """A one-line description of `model`'s layers, e.g. `Dense(128) ...`;
    a nested model (a Keras Application) by its name."""
    parts = []
    for layer in model.layers:
        if type(layer).__name__ == "InputLayer":
            continue
        if getattr(layer, "layers", None):  # a nested model
            parts.append(layer.name)
            continue
        size = getattr(layer, "units", None) or getattr(layer, "filters", None)
        parts.append(
            f"{type(layer).__name__}({size})" if size else type(layer).__name__
        )
    return " > ".join(parts)


def make_card(
    model, path, dataset, accuracy, method, hyperparameters, seed, **extra
):
    """The card of `model`, saved at `path`, as a dict."""
    import kd_keras

    return {
        "name": model.name,
        "file": Path(path).name,
        "file_bytes": os.path.getsize(path),
        "dataset": dataset,
        "architecture": architecture(model),
        "input_shape": list(model.input_shape[1:]),
        "parameters": int(model.count_params()),
        "test_accuracy": None
        if accuracy is None
        else round(float(accuracy), 4),
        "method": method,
        "hyperparameters": hyperparameters,
        "seed": seed,
        **extra,
        "versions": {
            "kd_keras": kd_keras.__version__,
            # Loaded with the model the card describes.
            "tensorflow": sys.modules["tensorflow"].__version__,
            "keras": sys.modules["keras"].__version__,
            "numpy": np.__version__,
            "python": platform.python_version(),
        },
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(
            timespec="seconds"
        ),
    }


def write_json(path, content, overwrite=False):
    """Writes `content` as JSON to `path` atomically."""
    with atomic_path(path, overwrite) as tmp:
        Path(tmp).write_text(json.dumps(content, indent=2) + "\n")
    return Path(path)


def read_card(model_path):
    """The card beside `model_path`."""
    return json.loads(card_path(model_path).read_text())
