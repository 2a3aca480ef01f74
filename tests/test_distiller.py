"""The Distiller: invariants, loss values, Keras integration, bad input."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import (
    CLASSES,
    FEATURES,
    CountingDistiller,
    assert_one_sgd_step,
    make_data,
    make_mlp,
)
from references import (
    expected_loss,
    np_cross_entropy_logit_gradient,
    np_kd,
    np_kd_logit_gradient,
    np_softmax,
)

import kd_keras
from kd_keras import losses, models, views

HISTORY_KEYS = {
    "loss",
    "student_loss",
    "distillation_loss",
    "accuracy",
    "teacher_agreement",
}


def compiled(teacher, student, **kwargs):
    distiller = kd_keras.Distiller(teacher, student, **kwargs)
    distiller.compile("adam", metrics=["accuracy"])
    return distiller


def test_fit_invariants(teacher, student, data):
    x, y = data
    before = [w.copy() for w in teacher.get_weights()]
    student_before = [w.copy() for w in student.get_weights()]
    distiller = compiled(teacher, student)
    history = distiller.fit(x, y, epochs=2, batch_size=32, verbose=0)
    for old, new in zip(before, teacher.get_weights(), strict=True):
        np.testing.assert_array_equal(old, new)
    assert any(
        not np.array_equal(old, new)
        for old, new in zip(student_before, student.get_weights(), strict=True)
    )
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(distiller(x)),
        keras.ops.convert_to_numpy(student(x)),
    )
    assert set(history.history) == HISTORY_KEYS
    assert distiller.student is student and distiller.teacher is teacher


@pytest.mark.parametrize("alpha,temperature", [(0.1, 4.0), (0.7, 1.0)])
def test_evaluate_reports_the_formula(
    teacher, student, data, alpha, temperature
):
    x, y = data
    distiller = compiled(teacher, student, alpha=alpha, temperature=temperature)
    logs = distiller.evaluate(
        x, y, batch_size=len(x), verbose=0, return_dict=True
    )
    total, hard, soft = expected_loss(
        teacher, student, x, y, alpha, temperature
    )
    assert set(logs) == HISTORY_KEYS
    np.testing.assert_allclose(logs["loss"], total, rtol=1e-4)
    np.testing.assert_allclose(logs["student_loss"], hard, rtol=1e-4)
    np.testing.assert_allclose(logs["distillation_loss"], soft, rtol=1e-4)
    agree = np.mean(
        teacher.predict(x, verbose=0).argmax(-1)
        == student.predict(x, verbose=0).argmax(-1)
    )
    np.testing.assert_allclose(logs["teacher_agreement"], agree, rtol=1e-6)


def test_one_train_step_follows_the_gradient(teacher, student, data):
    """One SGD step equals a step on the loss's gradient, derived by hand."""
    x, y = data
    before = student.get_weights()
    t = teacher.predict(x, verbose=0)
    s = student.predict(x, verbose=0)
    distiller = kd_keras.Distiller(teacher, student, alpha=0.3)
    distiller.compile(keras.optimizers.SGD(0.1))
    distiller.fit(x, y, batch_size=len(x), epochs=1, shuffle=False, verbose=0)
    logit_gradient = (
        0.3 * np_cross_entropy_logit_gradient(y, s)
        + 0.7 * np_kd_logit_gradient(t, s, 4.0)
    ) / len(x)
    assert_one_sgd_step(before, student.get_weights(), x, logit_gradient, 0.1)


def dropout_teacher(with_batch_norm):
    """A trained teacher whose training-mode outputs differ from inference."""
    keras.utils.set_random_seed(3)
    inputs = keras.Input((FEATURES,))
    h = keras.layers.Dense(64, activation="relu")(inputs)
    if with_batch_norm:
        h = keras.layers.BatchNormalization()(h)
    h = keras.layers.Dropout(0.5)(h)
    teacher = keras.Model(inputs, keras.layers.Dense(CLASSES)(h))
    teacher.compile(
        "adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    )
    teacher.fit(*make_data(seed=4), epochs=3, verbose=0)
    return teacher


@pytest.mark.parametrize("cache", [True, False], ids=["cached", "online"])
@pytest.mark.parametrize("with_batch_norm", [False, True], ids=["", "bn"])
def test_the_teacher_runs_in_inference_mode(cache, with_batch_norm, data):
    """Dropout off, BatchNorm on its moving statistics, unchanged by fit."""
    x, y = data
    teacher = dropout_teacher(with_batch_norm)
    weights = teacher.get_weights()
    student = make_mlp(16, "student")
    t = teacher.predict(x, verbose=0)
    s = student.predict(x, verbose=0)
    distiller = kd_keras.Distiller(teacher, student, cache=cache)
    distiller.compile("sgd")
    history = distiller.fit(
        x, y, batch_size=len(x), epochs=1, shuffle=False, verbose=0
    )
    # One batch: the logged loss is that of the step's forward pass.
    np.testing.assert_allclose(
        history.history["distillation_loss"][0],
        np_kd(t, s, 4.0).mean(),
        rtol=1e-5,
    )
    logs = distiller.evaluate(
        x, y, batch_size=len(x), verbose=0, return_dict=True
    )
    np.testing.assert_allclose(
        logs["distillation_loss"],
        np_kd(t, student.predict(x, verbose=0), 4.0).mean(),
        rtol=1e-5,
    )
    for old, new in zip(weights, teacher.get_weights(), strict=True):
        np.testing.assert_array_equal(old, new)


def test_keras_io_compile_runs_unchanged(teacher, student, data):
    x, y = data
    distiller = kd_keras.Distiller(teacher=teacher, student=student)
    distiller.compile(
        optimizer=keras.optimizers.Adam(),
        metrics=[keras.metrics.SparseCategoricalAccuracy()],
        student_loss_fn=keras.losses.SparseCategoricalCrossentropy(
            from_logits=True
        ),
        distillation_loss_fn=keras.losses.KLDivergence(),
        alpha=0.1,
        temperature=10,
    )
    assert distiller.alpha == 0.1 and distiller.temperature == 10.0
    logs = distiller.evaluate(
        x, y, batch_size=len(x), verbose=0, return_dict=True
    )
    total, _, soft = expected_loss(teacher, student, x, y, 0.1, 10.0)
    np.testing.assert_allclose(logs["distillation_loss"], soft, rtol=1e-4)
    np.testing.assert_allclose(logs["loss"], total, rtol=1e-4)
    history = distiller.fit(x, y, epochs=1, verbose=0)
    assert "sparse_categorical_accuracy" in history.history


def test_loss_and_student_loss_fn_are_exclusive(teacher, student):
    distiller = kd_keras.Distiller(teacher, student)
    with pytest.raises(ValueError, match="not both"):
        distiller.compile(loss="mse", student_loss_fn="mse")


def test_softmax_teacher_and_student_are_read_as_log_probabilities(
    teacher, student, data
):
    x, y = data
    softmax_teacher = keras.Sequential([teacher, keras.layers.Softmax()])
    probs_student = make_mlp(16, "probs_student", activation="softmax")
    logit_student = keras.models.clone_model(probs_student)
    logit_student.set_weights(probs_student.get_weights())
    logit_student.layers[-1].activation = keras.activations.linear
    logs_probs = compiled(softmax_teacher, probs_student).evaluate(
        x, y, batch_size=len(x), verbose=0, return_dict=True
    )
    logs_logits = compiled(teacher, logit_student).evaluate(
        x, y, batch_size=len(x), verbose=0, return_dict=True
    )
    for key in ("loss", "student_loss", "distillation_loss"):
        np.testing.assert_allclose(logs_probs[key], logs_logits[key], rtol=1e-4)


def test_sigmoid_output_is_refused_for_softmax_losses(teacher, student):
    sigmoid_teacher = make_mlp(8, "sigmoid_teacher", activation="sigmoid")
    with pytest.raises(ValueError, match="sigmoid"):
        kd_keras.Distiller(sigmoid_teacher, student)
    kd_keras.Distiller(
        sigmoid_teacher, student, distillation_loss=losses.LogitMSE()
    )


def test_sample_weight_weighs_both_terms(teacher, student, data):
    x, y = data
    weights = np.where(np.arange(len(x)) % 2 == 0, 1.0, 0.0).astype("f4")
    distiller = compiled(teacher, student)
    logs = distiller.evaluate(
        x,
        y,
        sample_weight=weights,
        batch_size=len(x),
        verbose=0,
        return_dict=True,
    )
    t = teacher.predict(x, verbose=0)
    s = student.predict(x, verbose=0)
    hard = -np.log(np_softmax(s)[np.arange(len(y)), y])
    np.testing.assert_allclose(
        logs["student_loss"], np.sum(hard * weights) / len(x), rtol=1e-4
    )
    np.testing.assert_allclose(
        logs["distillation_loss"],
        np.sum(np_kd(t, s, 4.0) * weights) / len(x),
        rtol=1e-4,
    )
    distiller.fit(
        x, y, class_weight={0: 1.0, 1: 2.0, 2: 0.5, 3: 1.0}, epochs=1, verbose=0
    )


def test_one_hot_labels(teacher, student, data):
    x, y = data
    one_hot = np.eye(CLASSES, dtype="float32")[y]
    sparse_logs = compiled(teacher, student).evaluate(
        x, y, verbose=0, return_dict=True
    )
    dense_logs = compiled(teacher, student).evaluate(
        x, one_hot, verbose=0, return_dict=True
    )
    np.testing.assert_allclose(
        dense_logs["student_loss"], sparse_logs["student_loss"], rtol=1e-5
    )


def test_regression_with_mse(data):
    x, _ = data

    def regressor(units, name):
        inputs = keras.Input((FEATURES,))
        h = keras.layers.Dense(units, activation="relu")(inputs)
        return keras.Model(inputs, keras.layers.Dense(1)(h), name=name)

    teacher, student = regressor(16, "t"), regressor(4, "s")
    y = x.sum(axis=1, keepdims=True)
    with pytest.raises(ValueError, match="LogitMSE"):
        kd_keras.Distiller(teacher, student)
    distiller = kd_keras.Distiller(
        teacher, student, distillation_loss=losses.LogitMSE(), alpha=0.5
    )
    distiller.compile("adam", loss="mse")
    logs = distiller.evaluate(
        x, y, batch_size=len(x), verbose=0, return_dict=True
    )
    t, s = teacher.predict(x, verbose=0), student.predict(x, verbose=0)
    np.testing.assert_allclose(
        logs["student_loss"], np.mean((s - y) ** 2), rtol=1e-4
    )
    np.testing.assert_allclose(
        logs["loss"],
        0.5 * np.mean((s - y) ** 2) + 0.5 * np.mean((s - t) ** 2),
        rtol=1e-4,
    )
    assert "teacher_agreement" not in logs


def test_without_labels_the_loss_is_the_distillation_loss(
    teacher, student, data
):
    x, _ = data
    distiller = compiled(teacher, student)
    history = distiller.fit(x, epochs=1, verbose=0)
    np.testing.assert_allclose(
        history.history["loss"], history.history["distillation_loss"]
    )


class Batches(keras.utils.PyDataset):
    def __init__(self, x, y, batch_size=32):
        super().__init__()
        self.x, self.y, self.batch_size = x, y, batch_size

    def __len__(self):
        return int(np.ceil(len(self.x) / self.batch_size))

    def __getitem__(self, i):
        part = slice(i * self.batch_size, (i + 1) * self.batch_size)
        return self.x[part], self.y[part]


def test_tf_data_and_py_dataset_inputs(teacher, student, data):
    x, y = data
    distiller = compiled(teacher, student)
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(32)
    history = distiller.fit(
        dataset, validation_data=dataset, epochs=1, verbose=0
    )
    assert "val_teacher_agreement" in history.history
    distiller.fit(Batches(x, y), epochs=1, verbose=0)
    assert (
        set(distiller.evaluate(Batches(x, y), verbose=0, return_dict=True))
        == HISTORY_KEYS
    )


@pytest.mark.parametrize("source", ["arrays", "dataset"])
def test_fit_traces_its_step_once(teacher, student, data, source):
    # The optimizer's and the metrics' variables exist before the step is
    # traced: tf.function traces a step that creates variables twice.
    x, y = data
    if source == "dataset":
        x, y = tf.data.Dataset.from_tensor_slices((x, y)).batch(32), None
    CountingDistiller.traces = 0
    distiller = CountingDistiller(teacher, student)
    distiller.compile("adam", metrics=["accuracy"])
    distiller.fit(x, y, batch_size=32, epochs=2, verbose=0)
    assert CountingDistiller.traces == 1
    assert distiller.optimizer.iterations.numpy() > 0


def test_keras_callbacks(teacher, student, data, tmp_path):
    x, y = data
    distiller = compiled(teacher, student)
    callbacks = [
        keras.callbacks.EarlyStopping(monitor="val_loss", patience=1),
        keras.callbacks.ModelCheckpoint(
            str(tmp_path / "best.weights.h5"),
            save_weights_only=True,
            save_best_only=True,
        ),
        keras.callbacks.BackupAndRestore(str(tmp_path / "backup")),
        keras.callbacks.ReduceLROnPlateau(monitor="loss", patience=1),
        keras.callbacks.TensorBoard(str(tmp_path / "logs")),
        keras.callbacks.CSVLogger(str(tmp_path / "log.csv")),
    ]
    distiller.fit(
        x, y, validation_split=0.25, epochs=3, callbacks=callbacks, verbose=0
    )
    assert (tmp_path / "best.weights.h5").exists()
    assert "val_teacher_agreement" in (tmp_path / "log.csv").read_text()
    assert any((tmp_path / "logs").rglob("events.out.tfevents.*"))


def assert_same_runs(first, second, atol=1e-6):
    """Two runs' `(loss history, final weights)` agree."""
    np.testing.assert_allclose(first[0], second[0], rtol=1e-5)
    for a, b in zip(first[1], second[1], strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=atol)


def test_jit_compile_matches_graph(teacher, student, data):
    """XLA and graph steps agree on the loss and the weights.

    With SGD: Adam divides by the root of its second moment, which turns
    kernel rounding differences in small gradients into full-size steps.
    """
    x, y = data
    results = []
    for jit in (False, True):
        keras.utils.set_random_seed(0)
        copy = keras.models.clone_model(student)
        copy.set_weights(student.get_weights())
        distiller = kd_keras.Distiller(teacher, copy)
        distiller.compile(
            keras.optimizers.SGD(0.1), metrics=["accuracy"], jit_compile=jit
        )
        history = distiller.fit(
            x, y, epochs=2, batch_size=32, shuffle=False, verbose=0
        )
        results.append((history.history["loss"], copy.get_weights()))
    assert_same_runs(*results)


def test_mixed_precision(data):
    x, y = data
    keras.mixed_precision.set_global_policy("mixed_float16")
    teacher, student = make_mlp(16, "t"), make_mlp(8, "s")
    distiller = kd_keras.Distiller(teacher, student)
    distiller.compile("adam", metrics=["accuracy"])
    assert isinstance(distiller.optimizer, keras.optimizers.LossScaleOptimizer)
    history = distiller.fit(x, y, epochs=2, verbose=0)
    assert np.all(np.isfinite(history.history["loss"]))
    assert student.layers[-1].compute_dtype == "float16"
    logs = distiller.evaluate(
        x, y, batch_size=len(x), verbose=0, return_dict=True
    )
    t = teacher.predict(x, verbose=0).astype("float32")
    s = student.predict(x, verbose=0).astype("float32")
    np.testing.assert_allclose(
        logs["distillation_loss"], np_kd(t, s, 4.0).mean(), rtol=1e-3
    )


def test_mirrored_strategy_averages_over_the_global_batch(
    trained_teacher, data, mirrored
):
    x, y = data
    keras.utils.set_random_seed(0)
    initial = make_mlp(16, "student").get_weights()
    results = []
    for strategy in (tf.distribute.get_strategy(), mirrored):
        with strategy.scope():
            teacher = keras.models.clone_model(trained_teacher)
            teacher.set_weights(trained_teacher.get_weights())
            student = make_mlp(16, "student")
            student.set_weights(initial)
            distiller = kd_keras.Distiller(teacher, student)
            distiller.compile(keras.optimizers.SGD(0.1))
        history = distiller.fit(
            x, y, batch_size=32, epochs=2, shuffle=False, verbose=0
        )
        results.append((history.history["loss"], student.get_weights()))
    assert_same_runs(*results, atol=1e-5)


def test_get_config_round_trip(teacher, student):
    distiller = kd_keras.Distiller(
        teacher,
        student,
        distillation_loss=losses.SoftTargetCrossEntropy(2.0),
        alpha=0.25,
    )
    restored = kd_keras.Distiller.from_config(distiller.get_config())
    assert restored.alpha == 0.25 and restored.temperature == 2.0
    assert isinstance(restored.distillation_loss, losses.SoftTargetCrossEntropy)
    assert restored.student.get_config() == student.get_config()


def test_distiller_keras_file_round_trip(teacher, student, data, tmp_path):
    x, y = data
    distiller = compiled(teacher, student, alpha=0.3, temperature=2.0)
    distiller.fit(x, y, epochs=1, verbose=0)
    distiller.save(tmp_path / "distiller.keras")
    restored = keras.models.load_model(tmp_path / "distiller.keras")
    assert isinstance(restored, kd_keras.Distiller)
    assert restored.alpha == 0.3 and restored.temperature == 2.0
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(restored(x)),
        keras.ops.convert_to_numpy(distiller(x)),
    )
    assert restored.evaluate(x, y, verbose=0, return_dict=True) == (
        pytest.approx(distiller.evaluate(x, y, verbose=0, return_dict=True))
    )
    for saved, loaded in zip(
        distiller.optimizer.variables, restored.optimizer.variables, strict=True
    ):
        np.testing.assert_array_equal(saved.numpy(), loaded.numpy())
    restored.fit(x, y, epochs=1, verbose=0)


# Bad input: each error names the argument and is raised before training.


def test_models_must_be_keras_models(student):
    with pytest.raises(TypeError, match="teacher must be a keras.Model"):
        kd_keras.Distiller(lambda x: x, student)
    with pytest.raises(TypeError, match="student must be a keras.Model"):
        kd_keras.Distiller(student, "student")


def test_same_model_refused(student):
    with pytest.raises(ValueError, match="must be different models"):
        kd_keras.Distiller(student, student)


def test_output_shapes_must_match(teacher):
    inputs = keras.Input((FEATURES,))
    other = keras.Model(inputs, keras.layers.Dense(CLASSES + 1)(inputs))
    with pytest.raises(ValueError, match="same shape"):
        kd_keras.Distiller(teacher, other)


def test_student_without_trainable_weights(teacher, student):
    student.trainable = False
    with pytest.raises(ValueError, match="no trainable weights"):
        kd_keras.Distiller(teacher, student)


@pytest.mark.parametrize(
    "temperature,error",
    [
        (0, ValueError),
        (-2.0, ValueError),
        ("hot", TypeError),
    ],
)
def test_bad_temperature(teacher, student, temperature, error):
    with pytest.raises(error, match="temperature"):
        kd_keras.Distiller(teacher, student, temperature=temperature)


@pytest.mark.parametrize(
    "alpha,error",
    [
        (-0.1, ValueError),
        (1.5, ValueError),
        ("0.5", TypeError),
    ],
)
def test_bad_alpha(teacher, student, alpha, error):
    with pytest.raises(error, match="alpha"):
        kd_keras.Distiller(teacher, student, alpha=alpha)
    distiller = kd_keras.Distiller(teacher, student)
    with pytest.raises(error, match="alpha"):
        distiller.compile("adam", alpha=alpha)


@pytest.mark.parametrize("temperature", [3.0, 4.0])
def test_conflicting_temperatures(teacher, student, temperature):
    # 4.0, the default's value, passed explicitly, conflicts too.
    with pytest.raises(ValueError, match="conflicts"):
        kd_keras.Distiller(
            teacher,
            student,
            distillation_loss=losses.KD(2.0),
            temperature=temperature,
        )
    kd_keras.Distiller(teacher, student, losses.KD(2.0), temperature=2.0)


def confident_softmax_teacher(teacher):
    """`teacher` with logits scaled up, ending in a softmax layer: some of
    its probabilities are far below 1e-12 (and 0 in float32)."""
    inputs = keras.Input((FEATURES,))
    logits = keras.layers.Rescaling(20.0)(teacher(inputs))
    return keras.Model(inputs, keras.layers.Softmax()(logits)), keras.Model(
        inputs, logits
    )


@pytest.mark.parametrize("temperature", [1.0, 4.0, 10.0])
def test_a_softmax_teacher_is_distilled_as_its_logits_twin(
    teacher, student, data, temperature
):
    x, y = data
    softmax_teacher, logits_teacher = confident_softmax_teacher(teacher)
    probabilities = softmax_teacher.predict(x, verbose=0)
    assert probabilities.min() < 1e-12
    values = [
        kd_keras.Distiller(t, student, temperature=temperature)
        .teacher_outputs(x)[0]
        .numpy()
        for t in (softmax_teacher, logits_teacher)
    ]
    np.testing.assert_allclose(values[0], values[1], rtol=1e-6)
    logs = [
        compiled(t, student, temperature=temperature).evaluate(
            x, y, batch_size=len(x), verbose=0, return_dict=True
        )
        for t in (softmax_teacher, logits_teacher)
    ]
    np.testing.assert_allclose(
        logs[0]["distillation_loss"], logs[1]["distillation_loss"], rtol=1e-6
    )


def test_a_softmax_dense_student_is_read_through_its_logits(teacher, data):
    """A `Dense(activation="softmax")` student's logits come from its graph."""
    x, _ = data
    inputs = keras.Input((FEATURES,))
    hidden = keras.layers.Dense(16, activation="relu")(inputs)
    softmax = keras.Model(
        inputs, keras.layers.Dense(CLASSES, activation="softmax")(hidden)
    )
    logits = models.copy_model(softmax, "logits")
    logits.layers[-1].activation = keras.activations.linear
    view = views.ModelView(softmax, [], "student")
    # Eager against a compiled graph: the kernels may differ in the last
    # bits, so the tolerance is absolute, far below any softmax's log.
    np.testing.assert_allclose(
        view(x).logits.numpy(), logits.predict(x, verbose=0), atol=1e-5
    )


def test_labels_out_of_range(teacher, student, data):
    x, y = data
    distiller = compiled(teacher, student)
    bad = y.copy()
    bad[3] = CLASSES
    with pytest.raises(ValueError, match=r"Labels must be in \[0, 4\)"):
        distiller.fit(x, bad, epochs=1, verbose=0)
    with pytest.raises(ValueError, match="Labels must be in"):
        distiller.fit(x, y, validation_data=(x, -bad), verbose=0)
    with pytest.raises(ValueError, match="Labels must be in"):
        distiller.evaluate(x, bad, verbose=0)
    with pytest.raises(ValueError, match="Labels must be in"):  # positional
        distiller.fit(x, y, 32, 1, 0, None, 0.0, (x, bad))


def test_fit_before_compile(teacher, student, data):
    x, y = data
    with pytest.raises(ValueError, match="compile"):
        kd_keras.Distiller(teacher, student).fit(x, y, verbose=0)


def test_second_distiller_shares_nothing_it_should_not(teacher):
    """Two distillers of one teacher train their own students only."""
    x, y = make_data(1)
    a, b = make_mlp(8, "a"), make_mlp(8, "b")
    b_before = [w.copy() for w in b.get_weights()]
    compiled(teacher, a).fit(x, y, epochs=1, verbose=0)
    compiled(teacher, b)
    for old, new in zip(b_before, b.get_weights(), strict=True):
        np.testing.assert_array_equal(old, new)


def test_batchnorm_teacher_statistics_stay_frozen(student, data):
    x, y = data
    inputs = keras.Input((FEATURES,))
    h = keras.layers.Dense(16)(inputs)
    h = keras.layers.BatchNormalization()(h)
    h = keras.layers.Dropout(0.5)(keras.layers.ReLU()(h))
    teacher = keras.Model(inputs, keras.layers.Dense(CLASSES)(h))
    teacher(x, training=True)  # any state, as long as it then stays
    before = [w.copy() for w in teacher.get_weights()]
    compiled(teacher, student).fit(x, y, epochs=2, verbose=0)
    for old, new in zip(before, teacher.get_weights(), strict=True):
        np.testing.assert_array_equal(old, new)


def test_student_regularization_is_added_to_the_loss(teacher, data):
    x, y = data
    inputs = keras.Input((FEATURES,))
    h = keras.layers.Dense(
        16, activation="relu", kernel_regularizer=keras.regularizers.L2(0.1)
    )(inputs)
    student = keras.Model(inputs, keras.layers.Dense(CLASSES)(h))
    distiller = compiled(teacher, student, alpha=0.2)
    logs = distiller.evaluate(
        x, y, batch_size=len(x), verbose=0, return_dict=True
    )
    total, _, _ = expected_loss(teacher, student, x, y, 0.2, 4.0)
    penalty = 0.1 * np.sum(student.layers[1].kernel.numpy() ** 2)
    np.testing.assert_allclose(logs["loss"], total + penalty, rtol=1e-4)


def test_unbuilt_sequential_student(teacher, data):
    x, y = data
    student = keras.Sequential(
        [keras.layers.Dense(8, activation="relu"), keras.layers.Dense(CLASSES)]
    )
    distiller = compiled(teacher, student)
    history = distiller.fit(x, y, epochs=2, verbose=0)
    assert student.built and np.all(np.isfinite(history.history["loss"]))
    assert history.history["loss"][1] < history.history["loss"][0]


def test_distillation_loss_must_be_a_loss_object(teacher, student):
    with pytest.raises(TypeError, match=r"kd_keras.losses.KD\(temperature"):
        kd_keras.Distiller(teacher, student, distillation_loss=losses.kd)


def test_numpy_scalars_are_numbers(teacher, student):
    distiller = kd_keras.Distiller(
        teacher, student, alpha=np.float32(0.5), temperature=np.int64(2)
    )
    assert distiller.alpha == 0.5 and distiller.temperature == 2.0


def test_keras_io_compile_on_single_output_models_is_refused(data):
    def single(name):
        inputs = keras.Input((FEATURES,))
        return keras.Model(inputs, keras.layers.Dense(1)(inputs), name=name)

    distiller = kd_keras.Distiller(
        single("t"), single("s"), distillation_loss=losses.LogitMSE()
    )
    with pytest.raises(ValueError, match="single output"):
        distiller.compile(
            "adam", distillation_loss_fn=keras.losses.KLDivergence()
        )


@pytest.mark.parametrize(
    "op, activation",
    [(keras.ops.softmax, "softmax"), (keras.ops.sigmoid, "sigmoid")],
)
def test_an_output_op_is_read_as_its_activation(op, activation):
    from kd_keras.views import output_activation

    inputs = keras.Input((FEATURES,))
    model = keras.Model(inputs, op(keras.layers.Dense(CLASSES)(inputs)))
    assert output_activation(model) == activation


def test_a_prepare_batch_override_is_never_cached(teacher, student, data):
    """A subclass changing its batches in `prepare_batch` gets them
    through the teacher at every step: nothing is cached."""

    class Doubled(kd_keras.Distiller):
        def prepare_batch(self, x, y):
            return 2.0 * x, y

    x, y = data
    distiller = Doubled(teacher, student)
    distiller.compile("sgd")
    assert distiller.changes_batches
    assert not kd_keras.Distiller(teacher, student).changes_batches
    distiller.fit(x, y, epochs=1, verbose=0)
    assert distiller.teacher_cache_nbytes is None


# --- keras.distillation's words ------------------------------------------

MODELS = ("teacher", "student")


@pytest.mark.parametrize(
    "words, alpha",
    [
        ({}, 0.1),
        ({"alpha": 0.3}, 0.3),
        ({"student_loss_weight": 0.7}, 0.7),
        ({"distillation_losses": losses.LogitsDistillation()}, 0.5),
        ({"distillation_loss": losses.LogitsDistillation()}, 0.5),
        ({"distillation_loss": losses.LogitsDistillation(), "alpha": 0.2}, 0.2),
    ],
)
def test_each_vocabulary_has_its_default_weight(teacher, student, words, alpha):
    distiller = kd_keras.Distiller(teacher, student, **words)
    assert distiller.alpha == distiller.student_loss_weight == alpha
    distiller.student_loss_weight = 0.25
    assert distiller.alpha == 0.25


@pytest.mark.parametrize(
    "words, message",
    [
        ({"alpha": 0.2, "student_loss_weight": 0.3}, "alpha and student_loss"),
        (
            {
                "distillation_loss": losses.KD(),
                "distillation_losses": losses.KD(),
            },
            "distillation_loss and distillation_losses are one setting",
        ),
    ],
)
def test_one_setting_in_two_words_is_refused(teacher, student, words, message):
    with pytest.raises(ValueError, match=message):
        kd_keras.Distiller(teacher, student, **words)


def test_a_teacher_that_is_not_a_model_is_a_type_and_value_error(student):
    with pytest.raises(TypeError) as error:
        kd_keras.Distiller("not_a_model", student)
    assert isinstance(error.value, ValueError)


@pytest.mark.parametrize("keras_words", [False, True])
def test_keras_words_log_total_loss_and_save_in_them(
    teacher, student, data, tmp_path, keras_words
):
    words = (
        {"distillation_losses": [losses.LogitsDistillation(2.0)]}
        if keras_words
        else {"distillation_loss": losses.KD(2.0)}
    )
    distiller = kd_keras.Distiller(teacher, student, **words)
    distiller.compile(loss="sparse_categorical_crossentropy")
    assert isinstance(distiller.optimizer, keras.optimizers.Adam)
    logs = distiller.fit(*data, epochs=1, verbose=0).history
    assert ("total_loss" in logs) == keras_words
    if keras_words:
        assert logs["total_loss"] == logs["loss"]
    config = distiller.get_config()
    assert ("student_loss_weight" in config) == keras_words
    assert ("alpha" in config) != keras_words
    distiller.save(tmp_path / "distiller.keras")
    loaded = keras.models.load_model(tmp_path / "distiller.keras")
    settings = {k: v for k, v in config.items() if k not in MODELS}
    assert {
        k: v for k, v in loaded.get_config().items() if k not in MODELS
    } == settings
    assert (loaded.total_loss_tracker is not None) == keras_words
