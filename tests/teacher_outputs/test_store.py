"""Teacher outputs stored on disk: `kd_keras.TeacherStore`."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import (
    CLASSES,
    FEATURES,
    augmented_mobilenet,
    make_data,
    make_mlp,
)

import kd_keras
from kd_keras.teacher_outputs import cache as teacher_cache
from kd_keras.teacher_outputs.store import MANIFEST, PROGRESS, TeacherStore

SAMPLES = 100


@pytest.fixture(scope="module")
def teacher():
    keras.utils.set_random_seed(0)
    return make_mlp(32, "teacher")


@pytest.fixture(scope="module")
def data():
    return make_data(samples=SAMPLES)


class Counter(keras.layers.Layer):
    """Counts the samples it sees in Python, leaving the weights (and so
    the teacher's fingerprint) unchanged."""

    samples = 0

    def call(self, x):
        def count(batch):
            Counter.samples += int(batch.shape[0])
            return batch

        counted = tf.py_function(count, [x], x.dtype)
        counted.set_shape(x.shape)
        return counted


def counting_teacher():
    inputs = keras.Input((FEATURES,))
    Counter.samples = 0
    return keras.Model(inputs, make_mlp(32, "trained")(Counter()(inputs)))


def build(teacher, data, path, **kwargs):
    options = dict(batch_size=16, samples_per_shard=32, verbose=0)
    return TeacherStore.build(teacher, data, path, **{**options, **kwargs})


def stored_outputs(batch):
    x, y = batch
    return x[teacher_cache.INPUTS].numpy(), x[teacher_cache.TEACHER_OUTPUTS], y


def test_round_trip_holds_inputs_labels_and_the_teachers_logits(
    teacher, data, tmp_path
):
    x, y = data
    store = build(teacher, data, tmp_path / "store", dtype="float32")
    assert (store.samples, store.classes, store.has_labels) == (100, 4, True)
    # 100 samples in shards of 32: 32 + 32 + 32 + 4.
    shards = [s["samples"] for s in store.manifest["shards"]]
    assert shards == [32, 32, 32, 4]
    assert store.output_nbytes == CLASSES * 4
    assert store.nbytes == SAMPLES * (FEATURES * 4 + 8 + CLASSES * 4)
    batches = list(store.dataset(batch_size=30, shuffle=False))
    assert [len(b[1]) for b in batches] == [30, 30, 30, 10]
    parts = [stored_outputs(batch) for batch in batches]
    inputs = np.concatenate([part[0] for part in parts])
    outputs = np.concatenate([part[1]["logits"] for part in parts])
    labels = np.concatenate([part[2] for part in parts])
    np.testing.assert_array_equal(inputs, x)
    np.testing.assert_array_equal(labels, y)
    np.testing.assert_allclose(
        outputs, teacher.predict(x, verbose=0), rtol=1e-6, atol=1e-6
    )
    assert store.dataset(batch_size=30).cardinality() == 4


def test_shuffled_samples_keep_their_own_outputs(teacher, data, tmp_path):
    x, y = data
    store = build(teacher, data, tmp_path / "store", dtype="float32")
    expected = teacher.predict(x, verbose=0)
    orders = []
    for _ in range(2):
        seen = []
        for batch in store.dataset(batch_size=16, shuffle=True):
            inputs, outputs, labels = stored_outputs(batch)
            rows = [int(np.flatnonzero((x == row).all(1))[0]) for row in inputs]
            np.testing.assert_array_equal(labels, y[rows])
            np.testing.assert_allclose(
                outputs["logits"], expected[rows], rtol=1e-6, atol=1e-6
            )
            seen += rows
        assert sorted(seen) == list(range(SAMPLES))
        orders.append(seen)
    assert orders[0] != orders[1] != list(range(SAMPLES))


def test_float16_top_k_is_smaller_and_keeps_the_top_probabilities(
    teacher, data, tmp_path
):
    x, _ = data
    store = build(teacher, x, tmp_path / "store", top_k=2)
    assert not store.has_labels
    # Two float16 values, two uint8 indices (of 4 classes) and one float16
    # for the rest, against four float32 logits.
    assert store.output_nbytes == 2 * 2 + 2 + 2
    packed = next(iter(store.dataset(batch_size=SAMPLES, shuffle=False)))
    logits = teacher_cache.decode(packed[teacher_cache.TEACHER_OUTPUTS], 4)[0]
    probabilities = keras.ops.softmax(logits).numpy()
    teacher_logits = teacher.predict(x, verbose=0).astype("float64")
    exact = np.exp(teacher_logits - teacher_logits.max(1, keepdims=True))
    exact /= exact.sum(1, keepdims=True)
    top = np.argsort(-exact, axis=1)[:, :2]
    np.testing.assert_allclose(
        np.take_along_axis(probabilities, top, 1),
        np.take_along_axis(exact, top, 1),
        atol=2e-3,
    )


def test_fit_from_the_store_trains_as_an_in_memory_cache(
    teacher, data, tmp_path
):
    x, y = data
    store = build(teacher, data, tmp_path / "store", dtype="float32")
    weights = []
    for source in ("store", "cache_argument", "memory"):
        keras.utils.set_random_seed(1)
        student = make_mlp(8, "student")
        cache = store if source == "cache_argument" else "auto"
        distiller = kd_keras.Distiller(teacher, student, cache=cache)
        distiller.compile(keras.optimizers.SGD(0.1), metrics=["accuracy"])
        if source == "store":
            history = distiller.fit(
                store, epochs=2, batch_size=20, shuffle=False, verbose=0
            )
        else:
            history = distiller.fit(
                x, y, epochs=2, batch_size=20, shuffle=False, verbose=0
            )
        assert len(history.history["loss"]) == 2
        weights.append(student.get_weights())
    for store_weights in weights[:2]:
        for a, b in zip(store_weights, weights[2], strict=True):
            np.testing.assert_allclose(a, b, rtol=0, atol=1e-6)
    result = distiller.evaluate(store, verbose=0, return_dict=True)
    assert 0 <= result["accuracy"] <= 1


def test_the_teacher_does_not_run_when_training_from_a_store(data, tmp_path):
    teacher = counting_teacher()
    store = build(teacher, data, tmp_path / "store")
    assert Counter.samples == SAMPLES
    distiller = kd_keras.Distiller(teacher, make_mlp(8, "student"), cache=store)
    distiller.compile("adam")
    distiller.fit(*data, epochs=2, validation_data=store, verbose=0)
    assert Counter.samples == SAMPLES


def test_features_are_stored_and_selected_by_name(data, tmp_path):
    inputs = keras.Input((FEATURES,))
    hidden = keras.layers.Dense(16, activation="relu", name="hidden")(inputs)
    second = keras.layers.Dense(12, activation="relu", name="second")(hidden)
    teacher = keras.Model(inputs, keras.layers.Dense(CLASSES)(second))
    store = build(
        teacher, data, tmp_path / "store", teacher_layers=["hidden", "second"]
    )
    batch = next(iter(store.dataset(batch_size=8, teacher_layers=["second"])))
    stored = batch[0][teacher_cache.TEACHER_OUTPUTS]
    assert sorted(stored) == ["feature_0", "logits"]
    expected = keras.Model(inputs, second)(batch[0][teacher_cache.INPUTS])
    np.testing.assert_allclose(stored["feature_0"], expected, atol=1e-2)
    student_inputs = keras.Input((FEATURES,))
    student_hidden = keras.layers.Dense(6, name="s_hidden")(student_inputs)
    student = keras.Model(
        student_inputs, keras.layers.Dense(CLASSES)(student_hidden)
    )
    distiller = kd_keras.Distiller(
        teacher,
        student,
        [kd_keras.losses.KD(), kd_keras.losses.FitNet("second", "s_hidden")],
    )
    distiller.compile("adam")
    history = distiller.fit(store, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    with pytest.raises(ValueError, match=r"also read \['third'\]"):
        store.dataset(teacher_layers=["third"])


def test_a_store_of_another_teacher_or_other_data_is_refused(
    teacher, data, tmp_path
):
    x, y = data
    store = build(teacher, data, tmp_path / "store")
    keras.utils.set_random_seed(5)
    other = make_mlp(32, "teacher")
    with pytest.raises(ValueError, match="built for another teacher"):
        kd_keras.Distiller(other, make_mlp(8, "student"), cache=store)
    distiller = kd_keras.Distiller(other, make_mlp(8, "student"))
    distiller.compile("adam")
    with pytest.raises(ValueError, match="built for another teacher"):
        distiller.fit(store, verbose=0)
    distiller = kd_keras.Distiller(teacher, make_mlp(8, "s"), cache=store)
    distiller.compile("adam")
    with pytest.raises(ValueError, match="received 99 samples"):
        distiller.fit(x[:-1], y[:-1], verbose=0)
    changed = y.copy()
    changed[50] = (changed[50] + 1) % CLASSES
    with pytest.raises(ValueError, match="received other samples"):
        distiller.fit(x, changed, verbose=0)
    with pytest.raises(ValueError, match="y must be None"):
        distiller.fit(store, y, verbose=0)


def test_a_reloaded_and_frozen_teacher_matches_its_store(
    teacher, data, tmp_path
):
    store = build(teacher, data, tmp_path / "store")
    teacher.save(tmp_path / "teacher.keras")
    reloaded = keras.models.load_model(tmp_path / "teacher.keras")
    reloaded.trainable = False
    store.check_teacher(reloaded)


def test_a_dataset_larger_than_a_batch_builds_the_same_store(
    teacher, data, tmp_path
):
    # A batched pipeline is read batch by batch and re-batched.
    pipeline = tf.data.Dataset.from_tensor_slices(data).batch(7)
    from_arrays = build(teacher, data, tmp_path / "arrays")
    from_pipeline = build(teacher, pipeline, tmp_path / "pipeline")
    for a, b in zip(
        from_arrays.manifest["shards"],
        from_pipeline.manifest["shards"],
        strict=True,
    ):
        assert a["data"] == b["data"]
        assert (tmp_path / "arrays" / a["file"]).read_bytes() == (
            tmp_path / "pipeline" / b["file"]
        ).read_bytes()
    from_arrays.check_data(pipeline)


def test_dict_inputs_round_trip(tmp_path):
    left, right = (
        keras.Input((3,), name="left"),
        keras.Input((2,), name="right"),
    )
    merged = keras.layers.Concatenate()([left, right])
    teacher = keras.Model(
        {"left": left, "right": right}, keras.layers.Dense(CLASSES)(merged)
    )
    rng = np.random.default_rng(0)
    x = {
        "left": rng.normal(size=(20, 3)).astype("float32"),
        "right": rng.integers(0, 5, (20, 2)).astype("uint8"),
    }
    store = build(
        teacher, x, tmp_path / "store", batch_size=4, samples_per_shard=8
    )
    packed = next(iter(store.dataset(batch_size=20, shuffle=False)))
    inputs = packed[teacher_cache.INPUTS]
    np.testing.assert_array_equal(inputs["left"], x["left"])
    np.testing.assert_array_equal(inputs["right"], x["right"])
    assert inputs["right"].dtype == tf.uint8


class Interrupt(Exception):
    pass


def interrupted_pipeline(data, after):
    """A pipeline of `data` in batches of 16 that raises after `after`."""

    def batches():
        for start in range(0, SAMPLES, 16):
            if start >= after:
                raise Interrupt
            yield data[0][start : start + 16], data[1][start : start + 16]

    return batches()


def test_an_interrupted_build_resumes_after_its_complete_shards(data, tmp_path):
    teacher = counting_teacher()
    path = tmp_path / "store"
    with pytest.raises(tf.errors.UnknownError, match="Interrupt"):
        # Batches of 16, shards of 32: shards 0 and 1 complete, shard 2
        # half-written.
        build(teacher, _generator_dataset(data, after=80), path)
    assert (path / PROGRESS).exists() and not (path / MANIFEST).exists()
    assert sorted(p.name for p in path.iterdir()) == [
        PROGRESS,
        "shard-00000.bin",
        "shard-00001.bin",
        "shard-00002.bin.partial",
    ]
    with pytest.raises(ValueError, match="build was interrupted"):
        TeacherStore(path)
    seen = Counter.samples
    resumed = build(teacher, data, path)
    # The two complete shards (64 samples) are not given to the teacher.
    assert Counter.samples - seen == SAMPLES - 64
    straight = build(teacher, data, tmp_path / "straight")
    for a, b in zip(
        resumed.manifest["shards"], straight.manifest["shards"], strict=True
    ):
        assert (path / a["file"]).read_bytes() == (
            tmp_path / "straight" / b["file"]
        ).read_bytes()
    assert not (path / PROGRESS).exists()


def _generator_dataset(data, after):
    return tf.data.Dataset.from_generator(
        lambda: interrupted_pipeline(data, after),
        output_signature=(
            tf.TensorSpec((None, FEATURES), tf.float32),
            tf.TensorSpec((None,), tf.int64),
        ),
    )


def test_resuming_with_other_data_or_settings_is_refused(
    teacher, data, tmp_path
):
    x, y = data
    path = tmp_path / "store"
    with pytest.raises(tf.errors.UnknownError, match="Interrupt"):
        build(teacher, _generator_dataset(data, after=80), path)
    with pytest.raises(ValueError, match=r"interrupted build .* top_k differ"):
        build(teacher, data, path, top_k=2)
    with pytest.raises(ValueError, match=r"data differs .* \(shard 0\)"):
        build(teacher, (x[::-1], y[::-1]), path)
    with pytest.raises(ValueError, match="shorter than the interrupted"):
        build(teacher, (x[:32], y[:32]), path)
    store = build(teacher, data, path, top_k=2, overwrite=True)
    assert store.top_k == 2


def test_a_folder_of_other_files_or_a_store_is_not_overwritten(
    teacher, data, tmp_path
):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "notes.txt").write_text("keep me")
    for overwrite in (False, True):
        with pytest.raises(ValueError, match=r"notes\.txt"):
            build(teacher, data, folder, overwrite=overwrite)
    assert sorted(p.name for p in folder.iterdir()) == ["notes.txt"]
    with pytest.raises(ValueError, match="is not a TeacherStore"):
        TeacherStore(folder)
    store = build(teacher, data, tmp_path / "store")
    with pytest.raises(FileExistsError, match="overwrite=True"):
        build(teacher, data, tmp_path / "store", top_k=2)
    assert TeacherStore(store.path).top_k is None


def test_a_damaged_store_is_refused_before_training(teacher, data, tmp_path):
    store = build(teacher, data, tmp_path / "store")
    shard = store.path / "shard-00001.bin"
    shard.write_bytes(shard.read_bytes()[:-3])
    with pytest.raises(ValueError, match=r"damaged: shard-00001\.bin .* is"):
        TeacherStore(store.path)
    shard.unlink()
    with pytest.raises(ValueError, match="is missing"):
        TeacherStore(store.path)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"top_k": 5}, "top_k must be at most the number of classes"),
        ({"batch_size": 0}, "batch_size must be >= 1"),
        ({"samples_per_shard": 20}, "multiple of batch_size"),
        ({"dtype": "int8"}, "dtype must be one of"),
    ],
)
def test_bad_arguments_are_refused(teacher, data, tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=message):
        build(teacher, data, tmp_path / "store", **kwargs)
    assert not (tmp_path / "store").exists()


def test_bad_data_is_refused(teacher, data, tmp_path):
    x, y = data
    with pytest.raises(ValueError, match="not sample weights"):
        build(teacher, (x, y, np.ones(SAMPLES)), tmp_path / "a")
    with pytest.raises(ValueError, match="repeats forever"):
        build(teacher, tf.data.Dataset.from_tensors(x).repeat(), tmp_path / "b")
    with pytest.raises(TypeError, match="data must be numpy arrays"):
        build(teacher, [1, 2], tmp_path / "c")
    bad = x.copy()
    bad[40, 2] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        build(teacher, bad, tmp_path / "d")


def test_top_k_store_is_refused_for_losses_reading_the_logits(
    teacher, data, tmp_path
):
    store = build(teacher, data, tmp_path / "store", top_k=2)
    with pytest.raises(ValueError, match="LogitMSE compare the logits"):
        kd_keras.Distiller(
            teacher, make_mlp(8, "s"), kd_keras.losses.LogitMSE(), cache=store
        )


def test_the_manifest_records_identity_and_settings(teacher, data, tmp_path):
    store = build(teacher, data, tmp_path / "store", top_k=2)
    manifest = json.loads((store.path / MANIFEST).read_text())
    assert manifest["samples"] == SAMPLES
    assert manifest["dtype"] == "float16" and manifest["top_k"] == 2
    assert len(manifest["teacher"]) == 64
    assert len(manifest["shards"]) == 4
    assert "TeacherStore" in repr(store) and "top 2 logits" in repr(store)


def test_a_chain_reads_its_head_teachers_outputs_from_the_store(data, tmp_path):
    teacher = counting_teacher()
    store = build(teacher, data, tmp_path / "store")
    students, histories = kd_keras.born_again(
        teacher,
        make_mlp(8, "student"),
        2,
        *data,
        fit_kwargs={"epochs": 1, "verbose": 0},
        distiller_kwargs={"cache": store},
    )
    assert Counter.samples == SAMPLES
    assert [h.model.cache for h in histories] == [store, "auto"]


def test_a_tuning_search_reads_the_store(data, tmp_path):
    teacher = counting_teacher()
    store = build(teacher, data, tmp_path / "store")
    x_val, y_val = make_data(seed=1, samples=30)
    result = kd_keras.tune(
        teacher,
        lambda hp: make_mlp(8, "student"),
        *data,
        validation_data=(x_val, y_val),
        max_trials=2,
        epochs=1,
        cache=store,
        directory=tmp_path,
        verbose=0,
    )
    # The teacher ran over the validation data alone, once.
    assert Counter.samples == SAMPLES + 30
    assert result.teacher_passes == 1 and len(result.trials) == 2
    with pytest.raises(ValueError, match="built for other data"):
        kd_keras.tune(
            teacher,
            lambda hp: make_mlp(8, "student"),
            x_val,
            y_val,
            validation_data=(x_val, y_val),
            max_trials=1,
            epochs=1,
            cache=store,
            directory=tmp_path,
            project_name="other",
            verbose=0,
        )


def test_schemes_without_a_teacher_step_refuse_a_store(teacher, data, tmp_path):
    store = build(teacher, data, tmp_path / "store")
    for scheme, reason in (
        ("dml", "it has no teacher"),
        ("function_matching", "changes each batch"),
    ):
        with pytest.raises(ValueError, match=reason):
            kd_keras.methods.train_scheme(
                scheme,
                teacher,
                make_mlp(8, "student"),
                *data,
                alpha=0.1,
                temperature=4.0,
                fit_kwargs={},
                cache=store,
            )


MOBILENET_LAYER = "MobileNetV3Small/expanded_conv_2_add"


def test_features_inside_nested_models_are_stored_by_path(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (8, 32, 32, 3)).astype("float32")
    y = np.arange(8) % CLASSES
    keras.utils.set_random_seed(0)
    teacher = augmented_mobilenet("teacher")
    store = build(
        teacher,
        (x, y),
        tmp_path / "store",
        teacher_layers=[MOBILENET_LAYER],
        dtype="float32",
    )
    manifest = json.loads((tmp_path / "store" / MANIFEST).read_text())
    assert manifest["teacher_layers"] == [MOBILENET_LAYER]
    assert TeacherStore(tmp_path / "store").teacher_layers == (MOBILENET_LAYER,)
    batch = next(
        iter(
            store.dataset(
                batch_size=8, shuffle=False, teacher_layers=[MOBILENET_LAYER]
            )
        )
    )
    app = teacher.get_layer("MobileNetV3Small")
    feature = keras.Model(
        app.input, app.get_layer("expanded_conv_2_add").output
    )
    np.testing.assert_allclose(
        batch[0][teacher_cache.TEACHER_OUTPUTS]["feature_0"],
        feature(x, training=False),
        rtol=1e-5,
        atol=1e-5,
    )
    # A student distils it from the store: 4x4 maps, as the teacher's.
    inputs = keras.Input((32, 32, 3))
    maps = keras.Sequential(
        [keras.layers.Conv2D(4, 8, strides=8, name="conv")], name="features"
    )(inputs)
    pooled = keras.layers.GlobalAveragePooling2D()(maps)
    student = keras.Model(inputs, keras.layers.Dense(CLASSES)(pooled))
    distiller = kd_keras.Distiller(
        teacher,
        student,
        [
            kd_keras.losses.KD(),
            kd_keras.losses.AttentionTransfer(MOBILENET_LAYER, "features/conv"),
        ],
        cache=store,
    )
    distiller.compile("adam")
    before = student.get_weights()
    history = distiller.fit(store, epochs=1, verbose=0)
    assert np.isfinite(history.history["attention_transfer"][0])
    assert not np.array_equal(before[0], student.get_weights()[0])
