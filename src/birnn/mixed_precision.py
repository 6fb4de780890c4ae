"""Mixed precision, with `keras.mixed_precision`'s names.

Examples:

>>> from birnn import layers, mixed_precision
>>> mixed_precision.set_global_policy("mixed_bfloat16")
>>> mixed_precision.global_policy()
<DTypePolicy "mixed_bfloat16">
>>> layers.LSTM(2).compute_dtype
'bfloat16'
>>> mixed_precision.set_global_policy("float32")
"""

from birnn.dtype_policies import (
    DTypePolicy,
    dtype_policy,
    global_policy,
    set_dtype_policy,
    set_global_policy,
)
from birnn.optimizers import LossScaleOptimizer

Policy = DTypePolicy

__all__ = [
    "DTypePolicy",
    "LossScaleOptimizer",
    "Policy",
    "dtype_policy",
    "global_policy",
    "set_dtype_policy",
    "set_global_policy",
]
