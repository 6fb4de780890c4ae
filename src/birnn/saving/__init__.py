"""Config serialization and Keras-format `.keras` / `.weights.h5` files.

- `serialization`: Keras 3 configs <-> birnn objects, `register_keras_serializable`.
- `weights_file`: the HDF5 weights layout Keras 3 uses (`save_weights`).
- `archive`: the `.keras` zip's members, read and checked, or written.
- `legacy_h5`: Keras 2's HDF5 model and weights files.
- `keras_file`: `save_model`/`load_model`/`load_weights`, whatever the file's format.
- `operations`: the Keras operations Keras records in functional configs to carry masks.
- `export`: routes to `torch.export` / TorchScript for serving.
"""

from birnn._lazy import lazy_getattr

_NAMES = {
    "register_keras_serializable": "birnn.saving.serialization",
    "register_serializable": "birnn.saving.serialization",
    "get_registered_name": "birnn.saving.serialization",
    "get_registered_object": "birnn.saving.serialization",
    "custom_object_scope": "birnn.saving.serialization",
    "serialize_keras_object": "birnn.saving.serialization",
    "deserialize_keras_object": "birnn.saving.serialization",
    "enable_unsafe_deserialization": "birnn.saving.lambdas",
    "save_model": "birnn.saving.keras_file",
    "load_model": "birnn.saving.keras_file",
    "save_weights": "birnn.saving.weights_file",
    "load_weights": "birnn.saving.keras_file",
    "export_for_serving": "birnn.saving.export",
    "SavingError": "birnn.saving.errors",
    "FileFormatError": "birnn.saving.errors",
    "WeightsMismatchError": "birnn.saving.errors",
    "UnknownObjectError": "birnn.saving.errors",
    "ConfigError": "birnn.saving.errors",
}
__all__ = sorted(_NAMES)
__getattr__ = lazy_getattr(__name__, _NAMES)


def __dir__():
    return __all__
