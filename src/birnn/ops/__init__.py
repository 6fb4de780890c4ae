"""Pure tensor functions (recurrent scans, fused kernels, mask compaction, attention, CTC).

No Keras concepts live here. Public: `ctc_decode` and `ctc_loss` (Keras's
`ops.ctc_decode` / `ops.ctc_loss` semantics).
"""

from birnn._lazy import lazy_getattr

_NAMES = {
    "ctc_decode": "birnn.ops.ctc",
    "ctc_loss": "birnn.ops.ctc",
}
__all__ = sorted(_NAMES)
__getattr__ = lazy_getattr(__name__, _NAMES)


def __dir__():
    return __all__
