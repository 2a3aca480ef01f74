"""The private Keras names kd_keras reads, and the old module names."""

import keras
import numpy as np
from conftest import make_data, make_mlp

from kd_keras import compat


def compiled_classifier(optimizer, **metrics):
    model = make_mlp(8, "model")
    model.compile(
        optimizer,
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        **metrics,
    )
    return model


def test_compiled_metrics_have_the_names_we_read():
    model = compiled_classifier(
        "sgd", metrics=["accuracy"], weighted_metrics=["accuracy"]
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


def test_a_layer_and_its_inputs_are_read_from_a_tensor():
    inputs = keras.Input((3,))
    dense = keras.layers.Dense(2)
    output = keras.layers.Softmax()(dense(inputs))
    assert isinstance(compat.producing_layer(output), keras.layers.Softmax)
    (logits,) = compat.layer_inputs(output)
    assert compat.producing_layer(logits) is dense


def test_graph_models_are_told_from_subclassed_ones():
    class Subclassed(keras.Model):
        def call(self, x):
            return x

    assert compat.has_graph(make_mlp(4, "functional"))
    assert compat.has_graph(keras.Sequential([keras.layers.Dense(2)]))
    assert not compat.has_graph(Subclassed())


def test_trainer_internals_exist():
    model = make_mlp(8, "model")
    model.compile("sgd", "mse")
    assert isinstance(compat.loss_tracker(model), keras.metrics.Mean), (
        "keras.Model._loss_tracker changed: update kd_keras.compat.loss_tracker"
    )
    compat.set_initial_epoch(model, 3)
    assert model._initial_epoch == 3
    for name in ("_maybe_symbolic_build", "_symbolic_build"):
        assert hasattr(keras.Model, name), (
            f"keras.Model.{name} is gone: update kd_keras.compat.BuildFromBatch"
        )
    for name in ("_save_model", "_get_file_path", "_should_save_model"):
        assert hasattr(keras.callbacks.ModelCheckpoint, name), (
            f"ModelCheckpoint.{name} is gone: update "
            "kd_keras.compat.SavingCheckpoint"
        )


def test_distribution_internals_exist():
    # No strategy is created here: a second collective strategy in one
    # process breaks the suite's MirroredStrategy.
    from tensorflow.python.distribute import collective_all_reduce_strategy

    assert compat.supports_no_merge_call() in (True, False)
    extended = collective_all_reduce_strategy.CollectiveAllReduceExtended
    assert hasattr(extended, "_in_multi_worker_mode"), (
        "MultiWorkerMirroredStrategy's extended._in_multi_worker_mode is "
        "gone: update kd_keras.compat.in_multi_worker_mode"
    )


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


def test_a_model_is_built_from_a_batch_of_arrays():
    model = compiled_classifier("adam", metrics=["accuracy"])
    x, y = make_data()
    compat.build_from_batch(model, (x, y, None))
    assert model.optimizer.built and model._compile_metrics.built, (
        "keras.Model._symbolic_build changed: update "
        "kd_keras.compat.build_from_batch"
    )
