"""Legacy HDF5 model files (`model.save("m.h5")`), as Keras 3 and tf.keras 2.x write them.

Layout (observed on files Keras 3.15.1 writes; tf.keras 2.x writes the same shape):

- root attributes: `model_config` (JSON: `{"class_name", "config"}` of the model),
  `training_config` (JSON of the compile arguments, with `optimizer_config`),
  `keras_version` and `backend`;
- group `model_weights`, attribute `layer_names` (every top-level layer); one group
  per layer with attribute `weight_names` (the layer's trainable then non-trainable
  weights) and one dataset per name at that path inside the group;
- group `optimizer_weights` (when compiled), attribute `weight_names`: the
  optimizer's variables in Keras's order (iteration, learning rate, slots).

An attribute longer than HDF5's 64 KB limit is split into `name0`, `name1`...
Weights are matched to layers by order among the layers that have weights (as
Keras does), so tf.keras-2 weight names (`.../kernel:0`) need no translation.
tf.keras-2 configs (`batch_input_shape`, list-form `inbound_nodes`, string
dtypes) are read by the ordinary deserialization once keys Keras 3 dropped
(`time_major`, `input_length`...) are removed and module-less objects (the legacy
form, which Keras 3 also writes in `.h5` files) are given Keras's module.
"""

from __future__ import annotations

import json
import os
import warnings
from typing import Any

import h5py
import numpy as np

from birnn.saving import atomic, weights_file
from birnn.saving.archive import KERAS_FORMAT_VERSION
from birnn.saving.errors import FileFormatError, SavingError, WeightsMismatchError
from birnn.saving.serialization import (
    deserialize_keras_object,
    object_sharing_scope,
    serialize_keras_object,
)

LEGACY_SUFFIXES = (".h5", ".hdf5")
_KERAS2_ONLY_KEYS = {
    "time_major": False,  # tf.keras RNN layers
    "input_length": None,  # Embedding
    "ragged": False,  # InputLayer
}


def is_legacy_path(filepath: str | os.PathLike) -> bool:
    """Whether `filepath` names a legacy HDF5 model file (not a `.weights.h5` file)."""
    name = os.fspath(filepath)
    return name.endswith(LEGACY_SUFFIXES) and not name.endswith(".weights.h5")


# ---------------------------------------------------------------------------- saving
def _legacy_weights(layer: Any) -> list:
    return list(layer.trainable_weights) + list(layer.non_trainable_weights)


def _weight_names(layer: Any, model_name: str) -> list[str]:
    paths = {id(w): path for w, path in zip(layer.weights, layer.weight_paths())}
    return [f"{model_name}/{paths[id(w)]}" for w in _legacy_weights(layer)]


def _write_attribute(group: h5py.Group, name: str, values: list[str]) -> None:
    encoded = np.array([v.encode("utf8") for v in values]) if values else np.array([])
    group.attrs[name] = encoded


def _training_config(model: Any) -> dict | None:
    from birnn import optimizers

    config = serialize_keras_object(model).get("compile_config")
    if not config:
        return None
    optimizer = config.get("optimizer")
    if optimizer is None and getattr(model, "optimizer", None) is not None:
        optimizer = optimizers.serialize(model.optimizer)
    out = {k: v for k, v in config.items() if k != "optimizer"}
    if optimizer is not None:
        out["optimizer_config"] = {
            "class_name": optimizer["class_name"],
            "config": optimizer["config"],
        }
    return out


def save_legacy_h5(
    model: Any,
    filepath: str | os.PathLike,
    overwrite: bool = True,
    include_optimizer: bool = True,
) -> None:
    """Writes `model` as a legacy HDF5 model file that Keras 3 and birnn load.

    The write is atomic (the old file stays until the new one is complete).

    Args:
        model: A built birnn model.
        filepath: Destination ending in `.h5` or `.hdf5`.
        overwrite: If `False`, an existing file is an error.
        include_optimizer: If `False`, the compile settings and the optimizer's
            state are left out (as Keras does).
    """
    filepath = os.fspath(filepath)
    if not overwrite and os.path.exists(filepath):
        raise FileExistsError(f"{filepath} exists and overwrite=False.")
    config = serialize_keras_object(model)
    model_config = {"class_name": config["class_name"], "config": config["config"]}
    training_config = _training_config(model) if include_optimizer else None
    with atomic.atomic_open(filepath) as target, h5py.File(target, "w") as f:
        f.attrs["keras_version"] = KERAS_FORMAT_VERSION
        f.attrs["backend"] = "torch"
        f.attrs["model_config"] = json.dumps(model_config)
        if training_config is not None:
            f.attrs["training_config"] = json.dumps(training_config)
        weights = f.create_group("model_weights")
        weights.attrs["keras_version"] = KERAS_FORMAT_VERSION
        weights.attrs["backend"] = "torch"
        _write_attribute(weights, "layer_names", [layer.name for layer in model.layers])
        for layer in model.layers:
            group = weights.create_group(layer.name)
            names = _weight_names(layer, model.name)
            _write_attribute(group, "weight_names", names)
            for name, weight in zip(names, _legacy_weights(layer)):
                group.create_dataset(name, data=weight.detach().cpu().numpy())
        _write_attribute(weights.create_group("top_level_model_weights"), "weight_names", [])
        optimizer = getattr(model, "optimizer", None)
        built = getattr(optimizer, "built", False)
        if training_config is not None and optimizer is not None and built:
            store: dict = {}
            optimizer.save_own_variables(store)
            group = f.create_group("optimizer_weights")
            names = [f"{optimizer.name}/variable_{key}" for key in store]
            _write_attribute(group, "weight_names", names)
            for name, key in zip(names, store):
                group.create_dataset(name, data=np.asarray(store[key]))


# ---------------------------------------------------------------------------- loading
def _read_attribute(group: h5py.Group, name: str) -> list[str]:
    """A string-list attribute, also when Keras split it into `name0`, `name1`..."""
    if name in group.attrs:
        chunks = [group.attrs[name]]
    else:
        chunks, index = [], 0
        while f"{name}{index}" in group.attrs:
            chunks.append(group.attrs[f"{name}{index}"])
            index += 1
    out = []
    for chunk in chunks:
        for value in np.atleast_1d(chunk):
            out.append(value.decode("utf8") if isinstance(value, bytes) else str(value))
    return out


def _text_attribute(f: h5py.File, name: str) -> str | None:
    value = f.attrs.get(name)
    if value is None:
        return None
    return value.decode("utf8") if isinstance(value, bytes) else str(value)


def _upgrade_config(config: Any) -> Any:
    """The config in Keras 3's form (recursively): the keys Keras 3 layers no longer
    take removed, and objects written without a module (the legacy form) given
    Keras's top-level module, so that they are looked up among the public classes."""
    if isinstance(config, list):
        return [_upgrade_config(c) for c in config]
    if not isinstance(config, dict):
        return config
    out = {}
    for key, value in config.items():
        if key in _KERAS2_ONLY_KEYS and value == _KERAS2_ONLY_KEYS[key]:
            continue
        if key == "input_length":
            continue  # Embedding's: shapes come from the Input
        out[key] = _upgrade_config(value)
    if "class_name" in out and "config" in out and out.get("module") is None:
        out["module"] = "keras"
    return out


def holds_legacy_weights(filepath: str) -> bool:
    """Whether `filepath` is an HDF5 file with legacy (Keras 2 layout) weights."""
    if not h5py.is_hdf5(filepath):
        return False
    with weights_file.open_h5(filepath, filepath) as f:
        keras3 = "vars" in f or "layers" in f
        return not keras3 and ("model_weights" in f or "layer_names" in f.attrs)


def load_legacy_weights(model: Any, filepath: str) -> None:
    """Loads the weights of a legacy HDF5 file (a whole model's or weights only)."""
    with weights_file.open_h5(filepath, filepath) as f:
        try:
            group = f["model_weights"] if "model_weights" in f else f
            load_weights_from_group(model, group, filepath)
        except (OSError, KeyError, RuntimeError) as e:
            if isinstance(e, FileFormatError):
                raise
            raise FileFormatError(
                f"{filepath} could not be read (truncated or corrupt): {e}"
            ) from e


def load_weights_from_group(model: Any, weights: h5py.Group, name: str) -> None:
    """Loads a legacy `model_weights` group (or a tf.keras-2 weights file's root) into
    `model`, matching layers that have weights by order; all or nothing."""
    layer_names = _read_attribute(weights, "layer_names")
    stored = []
    for layer_name in layer_names:
        if layer_name not in weights:
            raise FileFormatError(f"{name}: layer group {layer_name!r} is missing.")
        group = weights[layer_name]
        names = _read_attribute(group, "weight_names")
        if names:
            stored.append((layer_name, [np.asarray(group[n]) for n in names]))
    layers = [layer for layer in model.layers if _legacy_weights(layer)]
    if len(layers) != len(stored):
        raise WeightsMismatchError(
            f"{name} holds weights for {len(stored)} layers "
            f"({[n for n, _ in stored]}), but model '{model.name}' has {len(layers)} layers "
            f"with weights ({[layer.name for layer in layers]}); nothing was loaded."
        )
    plan = []
    for layer, (layer_name, arrays) in zip(layers, stored):
        params = _legacy_weights(layer)
        shapes = [tuple(p.shape) for p in params]
        if [a.shape for a in arrays] != shapes:
            raise WeightsMismatchError(
                f"{name}: layer {layer_name!r} has weights of shapes "
                f"{[a.shape for a in arrays]}, but layer '{layer.name}' of model "
                f"'{model.name}' expects {shapes}; nothing was loaded."
            )
        for param, array in zip(params, arrays):
            try:
                plan.append((param, weights_file.as_tensor(array, param)))
            except (TypeError, ValueError) as error:
                raise WeightsMismatchError(
                    f"{name}: a weight of layer {layer_name!r} cannot be loaded ({error}); "
                    "nothing was loaded."
                ) from None
    weights_file.assign(plan)  # every array is converted before any weight changes


def _compile_from_training_config(model: Any, training: dict, name: str) -> None:
    from birnn import optimizers

    optimizer_config = dict(training.get("optimizer_config") or {})
    optimizer = "rmsprop"
    if optimizer_config:
        inner = dict(optimizer_config.get("config") or {})
        for key in ("jit_compile", "is_legacy_optimizer", "decay"):
            inner.pop(key, None)
        optimizer = optimizers.deserialize(
            {"class_name": optimizer_config["class_name"], "config": inner}
        )

    def metric_names(entries: Any) -> Any:
        if isinstance(entries, dict) and "class_name" in entries:
            if entries["class_name"] == "MeanMetricWrapper":  # tf.keras 2's plain metrics
                config = entries.get("config") or {}
                return config.get("fn") or config.get("name")
            return entries
        if isinstance(entries, list):
            return [metric_names(e) for e in entries]
        if isinstance(entries, dict):
            return {k: metric_names(v) for k, v in entries.items()}
        return entries

    def per_output(entries: Any) -> Any:
        # tf.keras 2 writes one list per output, also for a single output.
        if isinstance(entries, list) and len(entries) == 1 and len(model.outputs or ()) == 1:
            return entries[0] if isinstance(entries[0], list) else entries
        return entries

    loss = training.get("loss")
    if isinstance(loss, dict) and "class_name" in loss:
        config = dict(loss.get("config") or {})
        if config.get("reduction") == "auto":  # tf.keras 2's default
            config["reduction"] = "sum_over_batch_size"
        loss = {**loss, "config": config}
    try:
        model.compile(
            optimizer=optimizer,
            loss=deserialize_keras_object(loss),
            loss_weights=training.get("loss_weights"),
            metrics=per_output(metric_names(training.get("metrics"))),
            weighted_metrics=per_output(metric_names(training.get("weighted_metrics"))),
        )
    except (ValueError, TypeError) as e:
        warnings.warn(f"{name}: the model was loaded without compiling it ({e}).", stacklevel=3)


def load_legacy_h5(
    filepath: str | os.PathLike,
    custom_objects: dict | None = None,
    compile: bool = True,
    safe_mode: bool = True,
) -> Any:
    """Loads a legacy HDF5 model file written by Keras 3 or tf.keras 2.x.

    Args:
        filepath: The `.h5` file.
        custom_objects: Names of user classes/functions the config refers to.
        compile: Whether to compile with the saved `training_config` (and restore the
            optimizer's variables when they fit).
        safe_mode: As in `load_model`.

    Returns:
        The birnn model with its weights.
    """
    filepath = os.fspath(filepath)
    try:
        f = h5py.File(filepath, "r")
    except OSError as e:
        raise FileFormatError(f"{filepath} is not a readable HDF5 file: {e}") from e
    with f:
        model_config = _text_attribute(f, "model_config")
        if model_config is None:
            raise FileFormatError(
                f"{filepath} has no `model_config` attribute: it holds weights only. Build "
                "the model and call `model.load_weights(path)`."
            )
        config = _upgrade_config(json.loads(model_config))
        if not isinstance(config, dict) or "class_name" not in config:
            raise FileFormatError(
                f"{filepath}: the legacy HDF5 file's `model_config` describes no model."
            )
        if config.get("class_name") in ("Functional", "Model"):  # written without a module
            config = {**config, "class_name": "Functional", "registered_name": "Functional"}
            config["module"] = "keras.src.models.functional"
        try:
            with object_sharing_scope():
                model = deserialize_keras_object(config, custom_objects, safe_mode=safe_mode)
        except SavingError as e:
            raise type(e)(f"{filepath}: {e}") from e
        if "model_weights" in f:
            load_weights_from_group(model, f["model_weights"], filepath)
        training = _text_attribute(f, "training_config")
        if compile and training is not None:
            _compile_from_training_config(model, json.loads(training), filepath)
            optimizer = getattr(model, "optimizer", None)
            if (
                "optimizer_weights" in f
                and optimizer is not None
                and hasattr(optimizer, "load_own_variables")
            ):
                group = f["optimizer_weights"]
                names = _read_attribute(group, "weight_names")
                store = {str(i): np.asarray(group[n]) for i, n in enumerate(names)}
                try:
                    optimizer.build(model)  # named by Keras paths, as compile() does
                    optimizer.load_own_variables(store)
                except ValueError as e:
                    warnings.warn(
                        f"{filepath}: optimizer state was not restored ({e}).", stacklevel=2
                    )
    return model
