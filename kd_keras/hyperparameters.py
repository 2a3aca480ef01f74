"""Checked hyper-parameters, held in variables a compiled step reads.

A temperature or a loss weight stored as a Python float is baked into the
traced training step: changing it retraces (or, worse, is ignored by an
already compiled function). `Hyperparameter` keeps the value in a
non-trainable float32 `keras.Variable` instead, so a schedule changes it with
an `assign` and the compiled, even XLA-compiled, step reads the new value.
"""

import numbers

# The defaults of `Distiller`, the losses, the command line and the
# application: Hinton KD at T=4, the hard labels weighted 0.1 (keras.io).
DEFAULT_TEMPERATURE = 4.0
DEFAULT_ALPHA = 0.1


def check_number(name, value):
    """Returns `value` as a float, or raises a `TypeError` naming `name`."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number. Received: {name}={value!r}")
    return float(value)


def check_integer(name, value, minimum):
    """Returns `value` as an int `>= minimum`, or raises naming `name`."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(
            f"{name} must be an integer. Received: {name}={value!r}"
        )
    if value < minimum:
        raise ValueError(
            f"{name} must be >= {minimum}. Received: {name}={value}"
        )
    return int(value)


def check_positive(name, value):
    """Returns `value` as a float `> 0`, or raises naming `name`."""
    value = check_number(name, value)
    if not value > 0:
        raise ValueError(f"{name} must be > 0. Received: {name}={value}")
    return value


def check_non_negative(name, value):
    """Returns `value` as a float `>= 0`, or raises naming `name`."""
    value = check_number(name, value)
    if not value >= 0:
        raise ValueError(f"{name} must be >= 0. Received: {name}={value}")
    return value


def check_weight(name, value):
    """Returns `value` as a float in [0, 1], or raises naming `name`."""
    value = check_number(name, value)
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be in [0, 1]. Received: {name}={value}")
    return value


def check_fraction(name, value):
    """Returns `value` as a float in (0, 1), or raises naming `name`."""
    value = check_number(name, value)
    if not 0.0 < value < 1.0:
        raise ValueError(f"{name} must be in (0, 1). Received: {name}={value}")
    return value


def check_temperature(temperature):
    """Returns `temperature` as a float `> 0`, or raises."""
    return check_positive("temperature", temperature)


class Default(float):
    """A default number, told apart from the same number passed explicitly.

    A signature shows it as the number; `value is DEFAULT` says whether a
    caller passed one.
    """


class Hyperparameter:
    """A float attribute stored in a non-trainable `keras.Variable`.

    Assigning checks the value and assigns it to the variable `obj._name`,
    which graph code reads; reading `obj.name` gives the Python float last
    assigned (not its float32 rounding).

    Args:
        check: `check(name, value)` returning the float to store, e.g.
            `check_positive`.
    """

    def __init__(self, check):
        self.check = check

    def __set_name__(self, owner, name):
        self.name = name
        self.attribute = f"_{name}"
        self.value_attribute = f"_{name}_value"

    def __get__(self, obj, owner=None):
        if obj is None:
            return self
        return obj.__dict__.get(self.value_attribute)

    def __set__(self, obj, value):
        value = self.check(self.name, value)
        obj.__dict__[self.value_attribute] = value
        variable = obj.__dict__.get(self.attribute)
        if variable is None:
            # Here, so that the checks load no TensorFlow: the command line
            # checks its arguments before loading it.
            import keras

            setattr(
                obj,
                self.attribute,
                keras.Variable(
                    value, dtype="float32", trainable=False, name=self.name
                ),
            )
        else:
            variable.assign(value)
