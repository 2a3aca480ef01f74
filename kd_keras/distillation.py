"""`keras.distillation`'s four names, from kd_keras: the one import to change.

```python
from kd_keras import distillation  # was: from keras import distillation

distiller = distillation.Distiller(
    teacher=teacher,
    student=student,
    distillation_losses=distillation.LogitsDistillation(temperature=3.0),
    student_loss_weight=0.5,
)
```

`Distiller` is `kd_keras.Distiller`, which takes `keras.distillation`'s
arguments with their defaults; `LogitsDistillation` and
`FeatureDistillation` are `kd_keras.losses`' (the KL default is Hinton's
loss); `DistillationLoss` is Keras' own base class, so a loss written for
Keras is one for kd_keras. See `docs/from_keras_distillation.md`.
"""

from keras.distillation import DistillationLoss

from kd_keras.distiller import Distiller
from kd_keras.losses import FeatureDistillation, LogitsDistillation

__all__ = [
    "Distiller",
    "DistillationLoss",
    "FeatureDistillation",
    "LogitsDistillation",
]
