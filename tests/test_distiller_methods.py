"""The Distiller with the method library: labels, features, combinations."""

import keras
import numpy as np
import pytest
from conftest import CLASSES, augmented_mobilenet
from references import np_at, np_dkd, np_fitnet, np_kd, np_softmax

import kd_keras
from kd_keras import losses

SHAPE, SAMPLES = (6, 6, 2), 48


def image_data(seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(SAMPLES, *SHAPE)).astype("float32")
    y = rng.integers(0, CLASSES, SAMPLES)
    return x, y


def cnn(filters, prefix):
    inputs = keras.Input(SHAPE)
    h = keras.layers.Conv2D(filters, 3, padding="same", name=f"{prefix}_conv")(
        inputs
    )
    h = keras.layers.ReLU(name=f"{prefix}_relu")(h)
    h = keras.layers.GlobalAveragePooling2D(name=f"{prefix}_pool")(h)
    outputs = keras.layers.Dense(CLASSES, name=f"{prefix}_logits")(h)
    return keras.Model(inputs, outputs, name=prefix)


def fitnet_distiller(cache="auto", **kwargs):
    keras.utils.set_random_seed(0)
    distiller = kd_keras.Distiller(
        cnn(8, "teacher"),
        cnn(4, "student"),
        distillation_loss=[
            losses.KD(2.0),
            losses.FitNet("teacher_relu", "student_relu"),
        ],
        distillation_loss_weights=[1.0, 10.0],
        cache=cache,
        **kwargs,
    )
    distiller.compile(keras.optimizers.SGD(0.05))
    return distiller


def intermediate(model, layer, x):
    view = keras.Model(model.inputs, model.get_layer(layer).output)
    return view.predict(x, verbose=0)


def test_labels_reach_dkd_and_its_warmup_follows_the_epochs(teacher, student):
    x = np.random.default_rng(0).normal(size=(40, 8)).astype("f4")
    y = np.arange(40) % CLASSES
    dkd = losses.DKD(
        tckd_weight=1.0, nckd_weight=8.0, temperature=4.0, warmup=4
    )
    distiller = kd_keras.Distiller(
        teacher, student, distillation_loss=dkd, alpha=0.0
    )
    distiller.compile(keras.optimizers.SGD(0.0))
    full = np_dkd(
        teacher.predict(x, verbose=0),
        student.predict(x, verbose=0),
        y,
        1.0,
        8.0,
        4.0,
    ).mean()
    history = distiller.fit(x, y, batch_size=40, epochs=2, verbose=0)
    np.testing.assert_allclose(
        history.history["distillation_loss"], [full / 4, full / 2], rtol=1e-4
    )
    # The warm-up ends with the fit: a later evaluate reports the whole term.
    assert dkd.warmup_scale == 1.0
    logs = distiller.evaluate(x, y, batch_size=40, verbose=0, return_dict=True)
    np.testing.assert_allclose(logs["distillation_loss"], full, rtol=1e-4)


def test_dkd_without_labels_is_refused(teacher, student):
    distiller = kd_keras.Distiller(
        teacher, student, distillation_loss=losses.DKD()
    )
    distiller.compile("sgd")
    with pytest.raises(ValueError, match="needs the ground-truth labels"):
        distiller.fit(np.zeros((8, 8), "f4"), epochs=1, verbose=0)


@pytest.mark.parametrize("cache", [False, True])
def test_feature_terms_match_numpy(cache):
    x, y = image_data()
    distiller = fitnet_distiller(cache=cache)
    logs = distiller.evaluate(
        x, y, batch_size=SAMPLES, verbose=0, return_dict=True
    )
    teacher, student = distiller.teacher, distiller.student
    adapter = distiller.adapters[1]
    hint = np_fitnet(
        intermediate(teacher, "teacher_relu", x),
        keras.ops.convert_to_numpy(
            adapter(intermediate(student, "student_relu", x))
        ),
    )
    soft = np_kd(
        teacher.predict(x, verbose=0), student.predict(x, verbose=0), 2.0
    )
    np.testing.assert_allclose(logs["kd"], soft.mean(), rtol=1e-4)
    np.testing.assert_allclose(logs["fitnet"], 10 * hint.mean(), rtol=1e-4)
    np.testing.assert_allclose(
        logs["distillation_loss"], soft.mean() + 10 * hint.mean(), rtol=1e-4
    )


def test_the_adapter_trains_and_stays_out_of_the_student(tmp_path):
    x, y = image_data()
    distiller = fitnet_distiller()
    adapter = distiller.adapters[1]
    before = [w.copy() for w in adapter.get_weights()]
    history = distiller.fit(x, y, batch_size=16, epochs=2, verbose=0)
    assert {"kd", "fitnet"} <= set(history.history)
    assert all(
        not np.array_equal(old, new)
        for old, new in zip(before, adapter.get_weights(), strict=True)
    )
    path = distiller.save_student(tmp_path / "student.h5")
    restored = keras.models.load_model(path)
    assert [w.shape for w in restored.weights] == [
        w.shape for w in distiller.student.weights
    ]
    assert "adapter" not in " ".join(layer.name for layer in restored.layers)


def test_cached_and_online_feature_training_agree():
    x, y = image_data()
    weights = []
    for cache in (True, False):
        distiller = fitnet_distiller(cache=cache)
        distiller.fit(x, y, batch_size=16, epochs=2, shuffle=False, verbose=0)
        weights.append(distiller.student.get_weights())
    for cached, online in zip(*weights, strict=True):
        np.testing.assert_allclose(cached, online, rtol=1e-5, atol=1e-6)


def test_feature_distillation_compiles_with_xla():
    x, y = image_data()
    graph = fitnet_distiller()
    graph.fit(x, y, batch_size=16, epochs=1, shuffle=False, verbose=0)
    xla = fitnet_distiller()
    xla.compile(keras.optimizers.SGD(0.05), jit_compile=True)
    xla.fit(x, y, batch_size=16, epochs=1, shuffle=False, verbose=0)
    for a, b in zip(
        graph.student.get_weights(), xla.student.get_weights(), strict=True
    ):
        np.testing.assert_allclose(a, b, atol=1e-5)


def test_attention_transfer_through_the_distiller():
    x, y = image_data()
    keras.utils.set_random_seed(0)
    teacher, student = cnn(8, "teacher"), cnn(4, "student")
    distiller = kd_keras.Distiller(
        teacher,
        student,
        distillation_loss=losses.AttentionTransfer(
            "teacher_relu", "student_relu"
        ),
        alpha=0.0,
    )
    distiller.compile("sgd")
    logs = distiller.evaluate(
        x, y, batch_size=SAMPLES, verbose=0, return_dict=True
    )
    expected = np_at(
        intermediate(teacher, "teacher_relu", x),
        intermediate(student, "student_relu", x),
        2,
    ).mean()
    np.testing.assert_allclose(logs["distillation_loss"], expected, rtol=1e-4)


def test_rkd_on_pooled_features_trains():
    x, y = image_data()
    keras.utils.set_random_seed(0)
    distiller = kd_keras.Distiller(
        cnn(8, "teacher"),
        cnn(4, "student"),
        distillation_loss=[
            losses.KD(),
            losses.RKD("teacher_pool", "student_pool"),
        ],
    )
    distiller.compile("adam")
    history = distiller.fit(x, y, batch_size=16, epochs=2, verbose=0)
    assert np.all(np.isfinite(history.history["rkd"]))
    assert history.history["rkd"][1] < history.history["rkd"][0]


def test_feature_distillation_under_mirrored_strategy(mirrored):
    x, y = image_data()
    with mirrored.scope():
        distiller = fitnet_distiller()
    history = distiller.fit(x, y, batch_size=16, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])


def test_a_subclassed_student_is_refused_for_feature_losses():
    class Subclassed(keras.Model):
        def __init__(self):
            super().__init__()
            self.dense = keras.layers.Dense(CLASSES)

        def call(self, x):
            return self.dense(keras.ops.mean(x, axis=(1, 2)))

    student = Subclassed()
    student(np.zeros((1, *SHAPE), "f4"))
    with pytest.raises(TypeError, match="subclassed"):
        kd_keras.Distiller(
            cnn(8, "teacher"),
            student,
            distillation_loss=losses.FitNet("teacher_relu", "dense"),
        )


def test_an_unknown_layer_is_named():
    with pytest.raises(ValueError, match="no layer named 'relu'.*student_conv"):
        kd_keras.Distiller(
            cnn(8, "teacher"),
            cnn(4, "student"),
            distillation_loss=losses.FitNet("teacher_relu", "relu"),
        )


def test_combined_logit_losses_report_each_term(teacher, student, data):
    x, y = data
    distiller = kd_keras.Distiller(
        teacher,
        student,
        distillation_loss=[losses.KD(2.0), losses.LogitMSE()],
        distillation_loss_weights=[1.0, 0.5],
        alpha=0.3,
    )
    distiller.compile("sgd")
    logs = distiller.evaluate(
        x, y, batch_size=len(x), verbose=0, return_dict=True
    )
    t, s = teacher.predict(x, verbose=0), student.predict(x, verbose=0)
    soft = np_kd(t, s, 2.0).mean()
    mse = ((t - s) ** 2).mean()
    hard = -np.log(np_softmax(s)[np.arange(len(y)), y]).mean()
    np.testing.assert_allclose(logs["student_loss"], hard, rtol=1e-4)
    np.testing.assert_allclose(logs["kd"], soft, rtol=1e-4)
    np.testing.assert_allclose(logs["logit_mse"], 0.5 * mse, rtol=1e-4)
    np.testing.assert_allclose(
        logs["distillation_loss"], soft + 0.5 * mse, rtol=1e-4
    )
    np.testing.assert_allclose(
        logs["loss"],
        0.3 * hard + 0.7 * (soft + 0.5 * mse),
        rtol=1e-4,
    )
    assert distiller.temperature == 2.0
    distiller.temperature = 3.0
    assert distiller.distillation_loss[0].temperature == 3.0


@pytest.mark.parametrize(
    "weights, error, match",
    [
        ([1.0], ValueError, "one weight per loss"),
        ([1.0, -1.0], ValueError, "distillation_loss_weights must be >= 0"),
        ([1.0, "a"], TypeError, "distillation_loss_weights must be a number"),
    ],
)
def test_bad_loss_weights(teacher, student, weights, error, match):
    with pytest.raises(error, match=match):
        kd_keras.Distiller(
            teacher,
            student,
            distillation_loss=[losses.KD(), losses.LogitMSE()],
            distillation_loss_weights=weights,
        )


def test_combination_round_trip(tmp_path):
    x, y = image_data()
    distiller = fitnet_distiller()
    distiller.fit(x, y, batch_size=16, epochs=1, verbose=0)
    path = tmp_path / "distiller.keras"
    distiller.save(path)
    restored = keras.models.load_model(path)
    assert [type(loss) for loss in restored.distillation_loss] == [
        losses.KD,
        losses.FitNet,
    ]
    assert restored.distillation_loss_weights == [1.0, 10.0]
    for a, b in zip(
        restored.adapters[1].get_weights(),
        distiller.adapters[1].get_weights(),
        strict=True,
    ):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(
        restored.predict(x[:4]), distiller.predict(x[:4])
    )


def test_losses_with_different_temperatures_reload(tmp_path, teacher, student):
    distiller = kd_keras.Distiller(
        teacher,
        student,
        distillation_loss=[losses.KD(2.0), losses.DKD(temperature=4.0)],
        distillation_loss_weights=np.array([1.0, 0.5]),
    )
    restored = kd_keras.Distiller.from_config(distiller.get_config())
    assert [loss.temperature for loss in restored.distillation_loss] == [
        2.0,
        4.0,
    ]
    assert restored.distillation_loss_weights == [1.0, 0.5]
    distiller.compile("sgd")
    path = tmp_path / "distiller.keras"
    distiller.save(path)
    assert keras.models.load_model(path).distillation_loss[1].temperature == 4.0


# Layers of nested models, named by their paths ("outer/inner").


def nested(model):
    """`model` called inside an outer functional model."""
    inputs = keras.Input(SHAPE)
    return keras.Model(inputs, model(inputs), name=f"outer_{model.name}")


@pytest.mark.parametrize("jit_compile", [False, True])
def test_paths_into_nested_models_train_as_the_layers_themselves(jit_compile):
    x, y = image_data()
    weights = []
    for wrap in (False, True):
        keras.utils.set_random_seed(0)
        teacher, student = cnn(8, "teacher"), cnn(4, "student")
        t, s = ("teacher/", "student/") if wrap else ("", "")
        distiller = kd_keras.Distiller(
            nested(teacher) if wrap else teacher,
            nested(student) if wrap else student,
            distillation_loss=[
                losses.KD(2.0),
                losses.FitNet(f"{t}teacher_relu", f"{s}student_relu"),
            ],
            distillation_loss_weights=[1.0, 10.0],
            cache=False,
        )
        distiller.compile(keras.optimizers.SGD(0.05), jit_compile=jit_compile)
        distiller.fit(x, y, batch_size=16, epochs=1, shuffle=False, verbose=0)
        weights.append(student.get_weights())
    for flat, inner in zip(*weights, strict=True):
        np.testing.assert_allclose(flat, inner, rtol=1e-5, atol=1e-6)


MOBILENET_LAYER = "MobileNetV3Small/expanded_conv_2_add"


def test_attention_transfer_inside_keras_applications():
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (8, 32, 32, 3)).astype("float32")
    y = np.arange(8) % CLASSES
    keras.utils.set_random_seed(0)
    teacher = augmented_mobilenet("teacher")
    student = augmented_mobilenet("student")
    distiller = kd_keras.Distiller(
        teacher,
        student,
        distillation_loss=losses.AttentionTransfer(
            MOBILENET_LAYER, MOBILENET_LAYER
        ),
        alpha=0.0,
        cache=False,
    )
    # Eagerly: tracing two MobileNets takes seconds (the test above
    # traces paths into nested models, with XLA too).
    distiller.compile(keras.optimizers.SGD(0.1), run_eagerly=True)
    logs = distiller.evaluate(x, y, batch_size=8, verbose=0, return_dict=True)
    features = [
        keras.Model(app.input, app.get_layer("expanded_conv_2_add").output)(
            x, training=False
        )
        for app in (
            model.get_layer("MobileNetV3Small") for model in (teacher, student)
        )
    ]
    expected = np_at(*(keras.ops.convert_to_numpy(f) for f in features), 2)
    np.testing.assert_allclose(
        logs["distillation_loss"], expected.mean(), rtol=1e-4
    )
    before = [student.get_weights(), teacher.get_weights()]
    distiller.fit(x, y, batch_size=4, epochs=1, verbose=0)
    trained = [
        name
        for name, old, new in zip(
            (w.path for w in student.weights),
            before[0],
            student.get_weights(),
            strict=True,
        )
        if not np.array_equal(old, new)
    ]
    # The stem and the first blocks, up to the feature, and the batch
    # statistics of every normalization.
    assert any("expanded_conv_2_project/kernel" in name for name in trained)
    assert any(
        "expanded_conv_2_project_bn/moving_mean" in name for name in trained
    )
    for old, new in zip(before[1], teacher.get_weights(), strict=True):
        np.testing.assert_array_equal(old, new)


# The methods of the library's second part, by name as the registry builds
# them: the feature ones on the CNNs' feature maps (NST) or pooled features.
SECOND_PART = {
    "sp": {"teacher_layer": "teacher_relu", "student_layer": "student_relu"},
    "pkt": {"teacher_layer": "teacher_pool", "student_layer": "student_pool"},
    "cc": {"teacher_layer": "teacher_pool", "student_layer": "student_pool"},
    "nst": {"teacher_layer": "teacher_relu", "student_layer": "student_relu"},
    "nkd": {},
    "wsld": {},
    "kd": {"standardize": True},
}


@pytest.mark.parametrize("name", sorted(SECOND_PART))
@pytest.mark.parametrize(
    "cache, jit_compile", [(True, False), (False, True)], ids=["cached", "xla"]
)
def test_second_part_methods_train_cached_and_with_xla(
    name, cache, jit_compile
):
    x, y = image_data()
    keras.utils.set_random_seed(0)
    built, weights = kd_keras.methods.distillation_losses(
        name, **SECOND_PART[name]
    )
    distiller = kd_keras.Distiller(
        cnn(8, "teacher"),
        cnn(4, "student"),
        distillation_loss=built,
        distillation_loss_weights=weights,
        cache=cache,
    )
    distiller.compile("adam", jit_compile=jit_compile)
    before = distiller.student.get_weights()
    history = distiller.fit(x, y, batch_size=16, epochs=1, verbose=0)
    assert np.isfinite(history.history["distillation_loss"][0])
    assert (distiller.teacher_cache_nbytes is not None) == cache
    after = distiller.student.get_weights()
    assert any(
        not np.allclose(a, b) for a, b in zip(after, before, strict=True)
    )
