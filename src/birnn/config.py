"""Global settings, with `keras.config`'s names."""

from birnn.backend import floatx, set_floatx
from birnn.ops.side_by_side import get_mode as side_by_side_mode
from birnn.ops.side_by_side import set_mode as set_side_by_side

__all__ = ["floatx", "set_floatx", "set_side_by_side", "side_by_side_mode"]
