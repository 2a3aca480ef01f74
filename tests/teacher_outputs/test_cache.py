"""Cached teacher outputs: pairing, equality with online training, storage."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import CLASSES, FEATURES, CountingDistiller, make_data, make_mlp
from references import np_kd, np_softmax

import kd_keras
from kd_keras.teacher_outputs import cache


def trained(teacher, data, cache_mode, epochs=2, **fit_kwargs):
    """Weights of a fresh, seeded student distilled with `cache_mode`."""
    keras.utils.set_random_seed(1)
    student = make_mlp(16, "student")
    distiller = kd_keras.Distiller(teacher, student, cache=cache_mode)
    distiller.compile(keras.optimizers.SGD(0.1))
    distiller.fit(data, epochs=epochs, verbose=0, **fit_kwargs)
    return student.get_weights(), distiller


def assert_same_weights(a, b):
    for left, right in zip(a, b, strict=True):
        np.testing.assert_allclose(left, right, rtol=1e-5, atol=1e-6)


def test_numpy_inputs_are_cached_by_default_and_match_online(teacher, data):
    x, y = data
    keras.utils.set_random_seed(1)
    cached, distiller = trained(
        teacher, x, "auto", y=y, batch_size=16, shuffle=True
    )
    assert distiller.teacher_cache_nbytes == len(x) * CLASSES * 4
    online, distiller = trained(
        teacher, x, False, y=y, batch_size=16, shuffle=True
    )
    assert distiller.teacher_cache_nbytes is None
    assert_same_weights(cached, online)


def test_cache_size_counts_training_and_validation_data(teacher, data):
    x, y = data
    distiller = kd_keras.Distiller(teacher, make_mlp(CLASSES, "student"))
    distiller.compile("adam")
    distiller.fit(x, y, validation_data=(x[:5], y[:5]), epochs=1, verbose=0)
    assert distiller.teacher_cache_nbytes == (len(x) + 5) * CLASSES * 4
    distiller.fit(x, y, epochs=1, verbose=0)
    assert distiller.teacher_cache_nbytes == len(x) * CLASSES * 4


def test_keyed_cache_pairs_each_sample_with_its_outputs(teacher, data):
    x, y = data
    shuffled = (
        tf.data.Dataset.from_tensor_slices((x, y))
        .shuffle(len(x), seed=0, reshuffle_each_iteration=True)
        .batch(10)
    )
    distiller = kd_keras.Distiller(teacher, make_mlp(16, "student"))
    keyed, _, _ = cache.keyed_dataset(
        "x",
        shuffled,
        tf.function(distiller.teacher_outputs),
        cache.TeacherCache(),
        0,
    )
    orders = []
    for _ in range(2):
        seen = []
        for packed, labels in keyed:
            inputs, stored = cache.unpack(packed)
            np.testing.assert_allclose(
                stored["logits"], teacher(inputs), rtol=1e-5, atol=1e-6
            )
            seen.append(labels.numpy())
        orders.append(np.concatenate(seen))
    assert not np.array_equal(orders[0], orders[1])


def test_cached_and_online_agree_on_a_deterministic_dataset(teacher, data):
    x, y = data
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(16)
    cached, distiller = trained(teacher, dataset, True)
    assert distiller.teacher_cache_nbytes == len(x) * CLASSES * 4
    online, _ = trained(teacher, dataset, False)
    assert_same_weights(cached, online)


def test_datasets_run_online_unless_asked(teacher, data):
    x, y = data
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(16)
    _, distiller = trained(teacher, dataset, "auto", epochs=1)
    assert distiller.teacher_cache_nbytes is None


def random_pipeline(x, y):
    """Noise from a generator whose state runs on across passes."""
    generator = tf.random.Generator.from_seed(0)
    return (
        tf.data.Dataset.from_tensor_slices((x, y))
        .map(lambda a, b: (a + generator.normal(tf.shape(a)), b))
        .batch(16)
    )


def test_a_random_pipeline_is_refused_when_caching_is_asked(teacher, data):
    with pytest.raises(ValueError, match="different inputs on each pass"):
        trained(teacher, random_pipeline(*data), True, epochs=1)


def test_a_random_pipeline_runs_online_by_default(teacher, data):
    _, distiller = trained(teacher, random_pipeline(*data), "auto", epochs=1)
    assert distiller.teacher_cache_nbytes is None


def test_an_infinite_dataset_is_refused(teacher, data):
    dataset = tf.data.Dataset.from_tensor_slices(data).batch(16).repeat()
    with pytest.raises(ValueError, match="finite"):
        trained(teacher, dataset, True, epochs=1, steps_per_epoch=2)


def test_a_generator_is_refused_when_caching_is_asked(teacher, data):
    x, y = data

    def batches():
        while True:
            yield x[:16], y[:16]

    with pytest.raises(ValueError, match="numpy arrays"):
        trained(teacher, batches(), True, epochs=1, steps_per_epoch=2)


def test_validation_data_is_cached_too(teacher, data):
    x, y = data
    distiller = kd_keras.Distiller(teacher, make_mlp(16, "student"))
    distiller.compile("adam")
    history = distiller.fit(
        x[:64], y[:64], validation_data=(x[64:], y[64:]), epochs=1, verbose=0
    )
    t = teacher.predict(x[64:], verbose=0)
    s = distiller.student.predict(x[64:], verbose=0)
    np.testing.assert_allclose(
        history.history["val_distillation_loss"][0],
        np_kd(t, s, 4.0).mean(),
        rtol=1e-4,
    )


def test_float16_storage_halves_the_memory(teacher, data):
    x, y = data
    _, distiller = trained(
        teacher, x, kd_keras.TeacherCache("float16"), y=y, epochs=1
    )
    assert distiller.teacher_cache_nbytes == len(x) * CLASSES * 2


def test_top_k_keeps_the_top_probabilities_and_the_rest_mass():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(5, 7)).astype("float32") * 3
    stored = cache.TeacherCache(top_k=3).encode([logits])
    decoded = keras.ops.convert_to_numpy(cache.decode(stored, 7)[0])
    p, q = np_softmax(logits), np_softmax(decoded)
    top = np.argsort(-logits, axis=-1)[:, :3]
    np.testing.assert_allclose(
        np.take_along_axis(q, top, -1), np.take_along_axis(p, top, -1), 1e-5
    )
    rest = np.ones_like(p, bool)
    np.put_along_axis(rest, top, False, -1)
    np.testing.assert_allclose(
        (q * rest).sum(-1), (p * rest).sum(-1), rtol=1e-5
    )
    # The other classes share their mass equally.
    others = q[rest].reshape(5, 4)
    np.testing.assert_allclose(others, others[:, :1].repeat(4, 1), rtol=1e-5)
    full = cache.TeacherCache(top_k=7).encode([logits])
    np.testing.assert_array_equal(full["logits"], logits)


def test_top_k_storage_trains(teacher, data):
    x, y = data
    _, distiller = trained(
        teacher, x, kd_keras.TeacherCache(top_k=2), y=y, epochs=1
    )
    # 2 float32 values, 2 uint8 indices (4 classes) and one float32 rest
    # value per sample.
    assert distiller.teacher_cache_nbytes == len(x) * (2 * 4 + 2 + 4)


@pytest.mark.parametrize(
    "bad, match",
    [
        ("sometimes", "cache must be"),
        (kd_keras.TeacherCache, "cache must be"),
    ],
)
def test_bad_cache_arguments(teacher, student, bad, match):
    with pytest.raises(ValueError, match=match):
        kd_keras.Distiller(teacher, student, cache=bad)


def test_bad_storage_arguments():
    with pytest.raises(ValueError, match="dtype"):
        kd_keras.TeacherCache("int8")
    with pytest.raises(ValueError, match="top_k"):
        kd_keras.TeacherCache(top_k=0)


@pytest.mark.parametrize("jit_compile", [False, True])
def test_a_new_temperature_is_used_without_retracing(
    teacher, student, data, jit_compile
):
    x, y = data
    CountingDistiller.traces = 0
    distiller = CountingDistiller(teacher, student, alpha=0.0)
    distiller.compile(keras.optimizers.SGD(0.0), jit_compile=jit_compile)
    t = teacher.predict(x, verbose=0)
    s = student.predict(x, verbose=0)
    for temperature in (4.0, 1.5, 9.0):
        distiller.temperature = temperature
        logs = distiller.fit(
            x, y, batch_size=len(x), epochs=1, verbose=0
        ).history
        np.testing.assert_allclose(
            logs["distillation_loss"][0],
            np_kd(t, s, temperature).mean(),
            rtol=1e-4,
        )
    assert CountingDistiller.traces == 1


def test_round_trip_keeps_the_cache_setting(teacher, student):
    distiller = kd_keras.Distiller(
        teacher, student, cache=kd_keras.TeacherCache("float16", top_k=2)
    )
    restored = kd_keras.Distiller.from_config(distiller.get_config())
    assert restored.cache.dtype == "float16" and restored.cache.top_k == 2
    off = kd_keras.Distiller(teacher, student, cache=False)
    assert kd_keras.Distiller.from_config(off.get_config()).cache is None


class SubclassedTeacher(keras.Model):
    """A teacher whose layers' output shapes Keras does not record."""

    def __init__(self):
        super().__init__()
        self.dense = keras.layers.Dense(CLASSES)

    def call(self, x):
        return self.dense(x)


def test_a_subclassed_teacher_is_cached(data):
    x, y = data
    teacher = SubclassedTeacher()
    teacher(x[:1])
    for storage in (True, kd_keras.TeacherCache(top_k=2)):
        weights, distiller = trained(teacher, x, storage, y=y, epochs=1)
        assert distiller.teacher_cache_nbytes
    online, _ = trained(teacher, x, False, y=y, epochs=1)
    cached, _ = trained(teacher, x, True, y=y, epochs=1)
    assert_same_weights(cached, online)


def test_sparse_inputs_run_online(data):
    x, y = data

    def sparse_mlp(units, name):
        inputs = keras.Input((x.shape[1],), sparse=True)
        hidden = keras.layers.Dense(units, activation="relu")(inputs)
        return keras.Model(
            inputs, keras.layers.Dense(CLASSES)(hidden), name=name
        )

    distiller = kd_keras.Distiller(
        sparse_mlp(16, "teacher"), sparse_mlp(8, "student")
    )
    distiller.compile("sgd")
    distiller.fit(tf.sparse.from_dense(x), y, epochs=1, verbose=0)
    assert distiller.teacher_cache_nbytes is None


def test_top_k_is_refused_for_losses_reading_the_logits(teacher, student, data):
    x, y = data
    distiller = kd_keras.Distiller(
        teacher,
        student,
        distillation_loss=kd_keras.losses.LogitMSE(),
        cache=kd_keras.TeacherCache(top_k=2),
    )
    distiller.compile("sgd")
    with pytest.raises(ValueError, match="LogitMSE compare the logits"):
        distiller.fit(x, y, epochs=1, verbose=0)


def test_a_dataset_of_unknown_length_is_refused(teacher, data):
    x, y = data

    def samples():
        yield from zip(x, y, strict=True)

    dataset = tf.data.Dataset.from_generator(
        samples,
        output_signature=(
            tf.TensorSpec(x.shape[1:], tf.float32),
            tf.TensorSpec((), tf.int64),
        ),
    ).batch(16)
    with pytest.raises(ValueError, match="length is unknown"):
        trained(teacher, dataset, True, epochs=1)
    sized = dataset.apply(tf.data.experimental.assert_cardinality(6))
    _, distiller = trained(teacher, sized, True, epochs=1)
    assert distiller.teacher_cache_nbytes == len(x) * CLASSES * 4


def test_auto_runs_online_when_features_are_too_large(
    teacher, student, data, monkeypatch
):
    from kd_keras.teacher_outputs import source as teacher_source

    x, y = data
    loss = kd_keras.losses.FitNet(
        teacher.layers[1].name, student.layers[1].name
    )
    distiller = kd_keras.Distiller(teacher, student, distillation_loss=loss)
    distiller.compile("sgd")
    monkeypatch.setattr(teacher_source, "AUTO_CACHE_BYTES", 1000)
    distiller.fit(x, y, epochs=1, verbose=0)
    assert distiller.teacher_cache_nbytes is None
    monkeypatch.setattr(teacher_source, "AUTO_CACHE_BYTES", 2**30)
    distiller.fit(x, y, epochs=1, verbose=0)
    # Logits and the teacher's 32 hidden features per sample.
    assert distiller.teacher_cache_nbytes == len(x) * (CLASSES + 32) * 4


def conv_teacher(filters):
    """28x28x1 images; the first layer outputs 28*28*filters float32s."""
    inputs = keras.Input((28, 28, 1))
    features = keras.layers.Conv2D(filters, 3, padding="same")(inputs)
    pooled = keras.layers.GlobalAveragePooling2D()(features)
    return keras.Model(inputs, keras.layers.Dense(CLASSES)(pooled))


@pytest.mark.parametrize(
    "filters, expected",
    [
        # 28*28*4*4 B = 12.5 KB per sample: 512 samples take 6.1 MiB.
        (4, 512),
        # 28*28*32*4 B = 98 KiB: 512 take 49 MiB, 256 take 24.5 MiB.
        (32, 256),
        # 28*28*64*4 B = 196 KiB: 256 take 49 MiB.
        (64, 128),
    ],
)
def test_the_caching_pass_batch_keeps_activations_within_32_mib(
    filters, expected
):
    assert cache.caching_batch_size(conv_teacher(filters), 128) == expected


def test_the_caching_pass_batch_is_4x_when_layer_shapes_are_unknown(data):
    teacher = SubclassedTeacher()
    teacher(data[0][:1])
    assert cache.caching_batch_size(teacher, 32) == 128


def test_fit_caches_with_the_caching_pass_batch(monkeypatch, data):
    x, y = data
    teacher = conv_teacher(32)
    student = conv_teacher(1)
    batch_sizes = []
    caching = cache.cache_arrays

    def recording(x, teacher_outputs, storage, batch_size, verbose):
        batch_sizes.append(batch_size)
        return caching(x, teacher_outputs, storage, batch_size, verbose)

    monkeypatch.setattr(cache, "cache_arrays", recording)
    images = np.random.default_rng(0).random((len(x), 28, 28, 1), "float32")
    distiller = kd_keras.Distiller(teacher, student)
    distiller.compile("sgd")
    distiller.fit(images, y, batch_size=128, epochs=1, verbose=0)
    assert batch_sizes == [256]


def test_outputs_of_other_teacher_layers_are_refused(trained_teacher):
    x, y = make_data()
    logits_only = kd_keras.Distiller(trained_teacher, make_mlp(16, "s"))
    packed = logits_only.with_teacher_outputs(x, verbose=0)
    hidden = trained_teacher.layers[1].name
    student = make_mlp(16, "student")
    fitnet = kd_keras.Distiller(
        trained_teacher,
        student,
        kd_keras.losses.FitNet(hidden, student.layers[1].name),
    )
    fitnet.compile("adam")
    with pytest.raises(ValueError, match="teacher outputs of x were computed"):
        fitnet.fit(packed, y, epochs=1, verbose=0)


def test_attached_outputs_train_like_a_cached_fit(trained_teacher):
    """A Distiller given `with_teacher_outputs`' result trains exactly as
    one that caches the outputs itself."""
    x, y = make_data()
    students = []
    for attach in (False, True):
        keras.utils.set_random_seed(1)
        student = make_mlp(16, "student")
        distiller = kd_keras.Distiller(trained_teacher, student)
        distiller.compile("sgd")
        inputs = distiller.with_teacher_outputs(x, verbose=0) if attach else x
        distiller.fit(
            inputs, y, epochs=2, batch_size=16, shuffle=False, verbose=0
        )
        students.append(student.get_weights())
    for a, b in zip(*students, strict=True):
        np.testing.assert_array_equal(a, b)


def test_attached_top_k_outputs_evaluate_in_a_new_distiller(trained_teacher):
    x, y = make_data()
    storage = kd_keras.TeacherCache(top_k=2)
    first = kd_keras.Distiller(
        trained_teacher, make_mlp(16, "s"), cache=storage
    )
    packed = first.with_teacher_outputs(x, verbose=0)
    student = make_mlp(16, "student")
    fresh = kd_keras.Distiller(trained_teacher, student, cache=storage)
    fresh.compile("sgd")
    attached = fresh.evaluate(packed, y, verbose=0, return_dict=True)
    online = kd_keras.Distiller(trained_teacher, student, cache=False)
    online.compile("sgd")
    exact = online.evaluate(x, y, verbose=0, return_dict=True)
    # Top-2 of 4 logits at T=4: close to the exact loss, not equal.
    assert attached["loss"] == pytest.approx(exact["loss"], rel=0.2)
    assert attached["student_loss"] == pytest.approx(exact["student_loss"])


def test_outputs_cannot_be_attached_for_changed_batches(trained_teacher):
    x, y = make_data()
    matching = kd_keras.FunctionMatching(trained_teacher, make_mlp(16, "s"))
    with pytest.raises(ValueError, match="cannot be computed ahead"):
        matching.with_teacher_outputs(x, verbose=0)
    plain = kd_keras.Distiller(trained_teacher, make_mlp(16, "s"))
    packed = plain.with_teacher_outputs(x, verbose=0)
    matching.compile("adam")
    with pytest.raises(ValueError, match="cannot carry teacher outputs"):
        matching.fit(packed, y, epochs=1, verbose=0)


def test_attached_top_k_outputs_are_refused_for_logit_losses(
    trained_teacher,
):
    x, y = make_data()
    storage = kd_keras.TeacherCache(top_k=2)
    kd = kd_keras.Distiller(trained_teacher, make_mlp(16, "s"), cache=storage)
    packed = kd.with_teacher_outputs(x, verbose=0)
    mse = kd_keras.Distiller(
        trained_teacher, make_mlp(16, "s"), kd_keras.losses.LogitMSE()
    )
    mse.compile("adam")
    with pytest.raises(ValueError, match="LogitMSE compare the logits"):
        mse.fit(packed, y, epochs=1, verbose=0)


@pytest.mark.parametrize(
    "classes, dtype", [(256, "uint8"), (257, "int16"), (40_000, "int32")]
)
def test_top_k_indices_take_the_smallest_integer_type(classes, dtype):
    logits = np.zeros((2, classes), "float32")
    logits[:, classes - 1] = 5.0
    stored = cache.TeacherCache(top_k=1).encode([logits])
    assert stored["top_indices"].dtype == dtype
    assert (stored["top_indices"] == classes - 1).all()
    decoded = cache.decode(stored, classes)[0].numpy()
    np.testing.assert_allclose(decoded[:, classes - 1], 5.0)


def test_the_caching_pass_traces_the_teacher_once(teacher):
    # 96 samples in caching batches of 80 (4 x 20) and a last one of 16.
    distiller = kd_keras.Distiller(teacher, make_mlp(8, "student"))
    x, _ = make_data()
    distiller.with_teacher_outputs(x, batch_size=20, verbose=0)
    assert distiller._source._function.experimental_get_tracing_count() == 1


def nested_mlp(units, name):
    """`make_mlp` called inside an outer model, as "mlp"."""
    inputs = keras.Input((FEATURES,))
    return keras.Model(inputs, make_mlp(units, "mlp")(inputs), name=name)


def test_layers_of_nested_models_are_cached_by_path(data):
    x, y = data
    weights = []
    for cache_mode in (True, False):
        keras.utils.set_random_seed(1)
        teacher, student = nested_mlp(32, "teacher"), nested_mlp(16, "student")
        t, s = (m.get_layer("mlp").layers[1].name for m in (teacher, student))
        distiller = kd_keras.Distiller(
            teacher,
            student,
            [
                kd_keras.losses.KD(),
                kd_keras.losses.FitNet(f"mlp/{t}", f"mlp/{s}"),
            ],
            cache=cache_mode,
        )
        distiller.compile(keras.optimizers.SGD(0.1))
        distiller.fit(x, y, batch_size=16, epochs=2, shuffle=False, verbose=0)
        weights.append(student.get_weights())
        if cache_mode:
            # Logits and the 32 features of the teacher's "mlp/<hidden>".
            assert distiller.teacher_cache_nbytes == len(x) * (CLASSES + 32) * 4
    assert_same_weights(*weights)
