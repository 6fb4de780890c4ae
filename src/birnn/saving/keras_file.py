"""The `.keras` file: `save_model` and `load_model`, readable and writable by Keras 3.

Layout (observed on files Keras 3.15.1 writes): a zip archive, members stored
uncompressed, in this order:

- `metadata.json`: `{"keras_version": "3.15.1", "date_saved": "2026-11-25@07:13:37"}`
  (`%Y-%m-%d@%H:%M:%S`, local time). Keras never reads it back when loading;
  birnn writes the same two keys plus `"birnn_version"`.
- `config.json`: `serialize_keras_object(model)`: for a `Sequential`,
  `{"module": "keras", "class_name": "Sequential", "config": {"name", "trainable",
  "dtype", "layers": [InputLayer config, layer configs...], ...}, "registered_name":
  None, "build_config": {"input_shape": [...]}, "compile_config": {...}}`; for a
  functional model `module="keras.src.models.functional"`,
  `class_name="Functional"`, `registered_name="Functional"`, and each entry of
  `config.layers` adds `name` and `inbound_nodes` (`{"args": [...], "kwargs":
  {...}}` with `__keras_tensor__` dicts whose `keras_history` is `[layer name,
  node index, tensor index]`), plus `input_layers`/`output_layers`. Layer configs
  carry `build_config: {"input_shape": [...]}` once built; `Bidirectional`'s
  `layer`/`backward_layer` entries are full layer configs. Objects used twice
  (dtype policies, initializers) carry a `shared_object_id`.
  `compile_config` is `{}` for an uncompiled model, else `{"optimizer":
  {serialized optimizer}, "loss": "mse" | {serialized loss}, "loss_weights",
  "metrics": ["mae", {serialized metric}...], "weighted_metrics", "run_eagerly",
  "steps_per_execution", "jit_compile"}`. Keras 3.15 writes the optimizer's
  module as its backend class (`keras.src.backend.torch.optimizers.torch_adam`).
- `model.weights.h5`: the weights in the layout `birnn.saving.weights_file`
  describes (optimizer state under `optimizer/vars`).

Keras 3.15 records the masks of a functional model as operation nodes
(`keras.src.ops.numpy.NotEqual` for `Embedding(mask_zero=True)`, `NotEqual` and
`Any` for `Masking`, `LogicalOr`/`ExpandDims`/`ZerosLike`/`Concatenate`... for
merges of masked tensors) whose outputs are passed as `mask=` to the next layer;
`birnn.saving.operations` computes them and writes them back the same way, and
`birnn.models.functional_masks` writes them for the masks of a model birnn built.

`save_model` writes the archive to a temporary file beside the target and
renames it over the target only once complete (see `birnn.saving.atomic`).
`load_model` reads and checks the whole archive, builds the model from its
config, and only then loads the weights, checking every shape first.
"""

from __future__ import annotations

import datetime
import io
import json
import os
import warnings
import zipfile
from typing import Any

import h5py

from birnn.saving import archive, legacy_h5, weights_file
from birnn.saving.errors import FileFormatError, SavingError
from birnn.saving.serialization import (
    deserialize_keras_object,
    object_sharing_scope,
    serialize_keras_object,
)


def _metadata() -> dict:
    from birnn import __version__

    return {
        "keras_version": archive.KERAS_FORMAT_VERSION,
        "date_saved": datetime.datetime.now().strftime("%Y-%m-%d@%H:%M:%S"),
        "birnn_version": __version__,
    }


def model_to_json(model: Any) -> str:
    """The `config.json` text of `model`."""
    return json.dumps(serialize_keras_object(model))


def save_model(
    model: Any,
    filepath: str | os.PathLike,
    overwrite: bool = True,
    zipped: bool | None = None,
    **kwargs: Any,
) -> None:
    """Saves `model` (config, compile config, weights) as a Keras 3 `.keras` file (or,
    for a `.h5`/`.hdf5` path, in the legacy HDF5 format, as Keras 3 does).

    The file loads in Keras 3 (`keras.models.load_model`) and in birnn. The write is
    atomic: until it completes, `filepath` keeps its previous contents.

    Args:
        model: A built birnn `Model` or `Sequential`.
        filepath: Destination; must end in `.keras`.
        overwrite: If `False`, an existing file is an error.
        zipped: `None` or `True`: a zipped `.keras` archive. Keras's `False` (an
            unzipped directory) is not supported.
        **kwargs: Keras's other keywords: `include_optimizer` (for a legacy `.h5`
            file; a `.keras` file always holds the optimizer, as in Keras) and the
            deprecated `save_format` (the format follows the file name).

    Raises:
        ValueError: a name without the `.keras` suffix, `zipped=False`, or a
            keyword Keras does not take (Keras raises `ValueError` too).
        FileExistsError: when `overwrite=False` and the file exists.

    Examples:

    >>> import os, tempfile, numpy as np, birnn
    >>> model = birnn.Sequential([birnn.Input((5, 10)),
    ...                          birnn.layers.Bidirectional(birnn.layers.LSTM(4)),
    ...                          birnn.layers.Dense(2)])
    >>> path = os.path.join(tempfile.mkdtemp(), "model.keras")
    >>> save_model(model, path)
    >>> restored = load_model(path)
    >>> x = np.ones((1, 5, 10), "float32")
    >>> bool(np.allclose(model.predict(x, verbose=0), restored.predict(x, verbose=0)))
    True
    """
    unknown = sorted(set(kwargs) - {"include_optimizer", "save_format"})
    if unknown:
        raise ValueError(
            f"save_model: unexpected keyword arguments {unknown}; it takes `filepath`, "
            "`overwrite`, `zipped`, `include_optimizer` and `save_format`."
        )
    if zipped is False:
        raise ValueError(
            "save_model: zipped=False (an unzipped model directory) is not supported; "
            "birnn writes zipped `.keras` files."
        )
    if "save_format" in kwargs:
        warnings.warn(
            "The `save_format` argument is deprecated in Keras 3 and ignored: the format "
            f"follows the file name. Received: save_format={kwargs['save_format']!r}",
            DeprecationWarning,
            stacklevel=2,
        )
    filepath = os.fspath(filepath)
    if legacy_h5.is_legacy_path(filepath):
        include_optimizer = bool(kwargs.get("include_optimizer", True))
        legacy_h5.save_legacy_h5(model, filepath, overwrite, include_optimizer)
        return
    if not filepath.endswith(".keras"):
        raise ValueError(
            "Invalid filepath extension for saving: use a `.keras` file (Keras 3's format) "
            f"or a legacy `.h5` file. Received: filepath={filepath}"
        )
    if not overwrite and os.path.exists(filepath):
        raise FileExistsError(f"{filepath} exists and overwrite=False.")
    config_json = model_to_json(model)
    weights = weights_file.weights_bytes(model)
    archive.write_archive(filepath, _metadata(), config_json, weights)


def load_model(
    filepath: str | os.PathLike,
    custom_objects: dict[str, Any] | None = None,
    compile: bool = True,
    safe_mode: bool = True,
) -> Any:
    """Loads a `.keras` file written by Keras 3 or birnn, or a legacy HDF5 model file
    (`model.save("m.h5")` of Keras 3 or tf.keras 2.x).

    Args:
        filepath: Path of the `.keras` (or `.h5`) file.
        custom_objects: Mapping of names to user classes/functions the config
            refers to (alternatively register them with
            `birnn.saving.register_keras_serializable()`).
        compile: Whether to compile the model with the saved optimizer, loss
            and metrics.
        safe_mode: If `True` (default), a file holding a Python lambda (a
            `Lambda` layer's function, saved as marshalled bytecode) raises
            instead of loading: only pass `False` for files you trust.

    Returns:
        The birnn model, with its weights.

    Raises:
        FileNotFoundError: no such file.
        FileFormatError: truncated, corrupt or foreign file (a `ValueError` and
            an `OSError`).
        UnknownObjectError: the config names a class birnn cannot find.
        ConfigError: a known class rejects its saved config (e.g. Keras's
            `mixed_float16` dtype policy).
        WeightsMismatchError: the weights do not fit the model.
    """
    filepath = os.fspath(filepath)
    if not filepath.endswith(".keras") and os.path.exists(filepath):
        if filepath.endswith(weights_file.WEIGHTS_SUFFIX):
            raise SavingError(
                f"{filepath} holds weights only; build the model and call "
                "`model.load_weights(path)` instead."
            )
        if not zipfile.is_zipfile(filepath):
            if h5py.is_hdf5(filepath):
                return legacy_h5.load_legacy_h5(filepath, custom_objects, compile, safe_mode)
            raise FileFormatError(
                f"{filepath} is neither a Keras 3 `.keras` archive nor a legacy HDF5 model "
                "file (SavedModel directories are not supported)."
            )
    contents = archive.read_archive(filepath)
    config = dict(contents.config)
    if not compile:
        config["compile_config"] = None
    try:
        with object_sharing_scope():
            model = deserialize_keras_object(config, custom_objects, safe_mode=safe_mode)
    except SavingError as e:
        raise type(e)(f"{filepath}: {e}") from e
    weights_file.load_h5(
        model, io.BytesIO(contents.weights), f"{filepath} ({archive.WEIGHTS_FILENAME})"
    )
    return model


def load_weights(model: Any, filepath: str | os.PathLike, skip_mismatch: bool = False) -> None:
    """Loads weights saved by Keras 3 or birnn (`.weights.h5`, a `.keras` file's, or a
    legacy HDF5 file's).

    All arrays are read and checked against the model before any is assigned:
    if anything is missing, extra or misshapen, the model is left unchanged.
    With `skip_mismatch=True` (Keras's meaning), each layer or cell whose weights
    do not fit is skipped instead, with a warning that lists them, and the rest is
    loaded (legacy HDF5 weights load all or nothing).

    Args:
        model: A built birnn model (or layer).
        filepath: A `.weights.h5` file, a `.keras` file (its weights are used) or
            a legacy `.h5` file.
        skip_mismatch: Skip the layers whose weights differ in count or shape.

    Raises:
        FileNotFoundError: no such file.
        FileFormatError: truncated, corrupt or foreign file.
        WeightsMismatchError: the weights do not fit the model.
    """
    filepath = os.fspath(filepath)
    if not os.path.exists(filepath):
        raise FileNotFoundError(f"No such weights file: {filepath}")
    if filepath.endswith(".keras"):
        contents = archive.read_archive(filepath)
        name = f"{filepath} ({archive.WEIGHTS_FILENAME})"
        weights_file.load_h5(model, io.BytesIO(contents.weights), name, skip_mismatch)
        return
    if filepath.endswith(".weights.json"):
        raise FileFormatError(
            f"{filepath} is a sharded Keras weights manifest; birnn reads single-file "
            "`.weights.h5` weights only."
        )
    if legacy_h5.holds_legacy_weights(filepath):
        legacy_h5.load_legacy_weights(model, filepath)
        return
    weights_file.load_h5(model, filepath, filepath, skip_mismatch)
