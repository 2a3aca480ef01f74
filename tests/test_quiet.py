"""`kd_keras.quiet`: what TensorFlow prints, silenced for one call."""

import os
import sys

import keras
import numpy as np
import pytest

from kd_keras import export, quiet


def test_silenced_swallows_every_stream_and_restores_them(capfd):
    with quiet.silenced():
        print("python stdout")
        print("python stderr", file=sys.stderr)
        os.write(1, b"fd 1\n")
        os.write(2, b"fd 2\n")
    print("after")
    os.write(2, b"after on fd 2\n")
    out, err = capfd.readouterr()
    assert out == "after\n" and err == "after on fd 2\n"


def test_silenced_restores_the_streams_after_an_error(capfd):
    with pytest.raises(ValueError, match="inside"), quiet.silenced():
        raise ValueError("inside")
    os.write(1, b"restored\n")
    assert capfd.readouterr().out == "restored\n"


def test_show_tensorflow_lets_it_through(capfd, monkeypatch):
    monkeypatch.setattr(quiet, "SHOW_TENSORFLOW", True)
    with quiet.silenced():
        os.write(2, b"shown\n")
    assert capfd.readouterr().err == "shown\n"


def test_export_prints_nothing(capfd):
    """Keras' export printed "Saved artifact at ..." and its endpoints, the
    converter "fully_quantize: ...", the interpreter "Created TensorFlow
    Lite XNNPACK delegate"."""
    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Dense(3)(inputs))
    x = np.random.default_rng(0).normal(size=(8, 4)).astype("float32")
    capfd.readouterr()
    flatbuffer = export.to_tflite(model, "int8", representative_x=x)
    export.tflite_predict(flatbuffer, x)
    out, err = capfd.readouterr()
    assert out == "" and err == ""


def test_the_loggers_of_tensorflow_and_absl_are_silenced(caplog):
    import logging

    with quiet.silenced():
        logging.getLogger("tensorflow").info("Assets written to: /tmp/x")
        logging.getLogger("absl").warning("hidden")
    logging.getLogger("tensorflow").warning("after")
    assert [r.getMessage() for r in caplog.records] == ["after"]
