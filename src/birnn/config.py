"""Global settings, with `keras.config`'s names."""

from birnn.backend import floatx, set_floatx

__all__ = ["floatx", "set_floatx"]
