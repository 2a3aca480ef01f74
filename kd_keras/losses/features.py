"""Deprecated name of the feature losses' modules, kept for one release.

`FitNet` is in `kd_keras.losses.fitnet`, `AttentionTransfer` in
`kd_keras.losses.attention`, `RKD` in `kd_keras.losses.rkd`; all are in
`kd_keras.losses`.
"""

import warnings

from kd_keras.losses.attention import (  # noqa: F401
    AttentionTransfer,
    attention_map,
    attention_transfer,
)
from kd_keras.losses.fitnet import FitNet, fitnet_hint  # noqa: F401
from kd_keras.losses.rkd import RKD, rkd, rkd_angle, rkd_distance  # noqa: F401

warnings.warn(
    "kd_keras.losses.features is split into kd_keras.losses.fitnet, "
    ".attention and .rkd; the old name is removed in the next release. "
    "Import the losses from kd_keras.losses.",
    DeprecationWarning,
    stacklevel=2,
)
