"""Global settings, with `keras.config`'s names."""

from birnn.backend import floatx, set_floatx
from birnn.dtype_policies import dtype_policy, set_dtype_policy

__all__ = ["dtype_policy", "floatx", "set_dtype_policy", "set_floatx"]
