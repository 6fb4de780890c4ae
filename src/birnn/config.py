"""Global settings, with `keras.config`'s names."""

from birnn.backend import floatx, set_floatx
from birnn.dtype_policies import dtype_policy, set_dtype_policy
from birnn.ops.side_by_side import get_mode as side_by_side_mode
from birnn.ops.side_by_side import set_mode as set_side_by_side

__all__ = [
    "dtype_policy",
    "floatx",
    "set_dtype_policy",
    "set_floatx",
    "set_side_by_side",
    "side_by_side_mode",
]
