"""Deprecated name of `kd_keras.app.evaluation`, kept for one release."""

from kd_keras._deprecated import moved

moved(__name__, "kd_keras.app.evaluation")
