"""Functional `Model`, `Sequential` and `load_model`."""

from birnn._lazy import lazy_getattr

_NAMES = {
    "Model": "birnn.models.model",
    "Sequential": "birnn.models.sequential",
    "load_model": "birnn.saving.keras_file",
    "clone_model": "birnn.models.cloning",
    "model_from_json": "birnn.models.cloning",
}
__all__ = sorted(_NAMES)
__getattr__ = lazy_getattr(__name__, _NAMES)


def __dir__():
    return __all__
