"""The private Keras names kd_keras reads still exist and mean the same."""

import keras
import numpy as np
from conftest import make_data, make_mlp

from kd_keras import compat


def test_compiled_metrics_have_the_names_we_read():
    model = make_mlp(8, "model")
    model.compile(
        "sgd",
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
        weighted_metrics=["accuracy"],
    )
    x, y = make_data()
    model.evaluate(x, y, verbose=0)
    metrics = model._compile_metrics
    assert metrics is not None and metrics.built, (
        "keras.Model._compile_metrics changed: update "
        "kd_keras.compat.update_compiled_metrics"
    )
    assert len(metrics._flat_metrics) == 1
    assert len(metrics._flat_weighted_metrics) == 1


def test_update_compiled_metrics_weighs_each_group():
    model = make_mlp(8, "model")
    model.compile("sgd", metrics=["accuracy"], weighted_metrics=["accuracy"])
    x, y = make_data(samples=4)
    y_pred = keras.ops.one_hot(np.array([y[0], y[1], 0, 0]), 4)
    y = np.array([y[0], y[1], 1, 1])
    compat.update_compiled_metrics(
        model,
        y,
        y_pred,
        unweighted=np.array([1.0, 1.0, 1.0, 0.0]),
        weighted=np.array([1.0, 0.0, 2.0, 0.0]),
    )
    results = model.get_metrics_result()
    # Unweighted: 2 right of 3 counted; weighted: (1 + 0) / (1 + 2).
    np.testing.assert_allclose(results["accuracy"], 2 / 3, rtol=1e-6)
    np.testing.assert_allclose(results["weighted_accuracy"], 1 / 3, rtol=1e-6)
