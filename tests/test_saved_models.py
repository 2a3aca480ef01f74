"""The models in saved_models/ load with plain Keras and match their cards."""

import json
from pathlib import Path

import keras
import numpy as np
import pytest

from kd_keras import datasets

SAVED = Path(__file__).parents[1] / "saved_models"
MODELS = (
    "digits_mlp_teacher",
    "fashion_mnist_cnn_teacher",
    "fashion_mnist_cnn_student",
)


@pytest.mark.parametrize("name", MODELS)
def test_model_matches_its_card(name):
    path = SAVED / f"{name}.h5"
    card = json.loads(path.with_name(path.name + ".json").read_text())
    assert path.stat().st_size < 5 * 2**20
    assert card["file_bytes"] == path.stat().st_size
    try:
        _, (x_test, y_test) = datasets.load(card["dataset"])
    except FileNotFoundError as error:
        pytest.skip(f"{card['dataset']} is not on this machine: {error}")
    model = keras.models.load_model(path, compile=False)
    assert model.count_params() == card["parameters"]
    predictions = model.predict(x_test, batch_size=512, verbose=0)
    accuracy = np.mean(np.argmax(predictions, axis=-1) == y_test)
    assert abs(accuracy - card["test_accuracy"]) <= 0.005
