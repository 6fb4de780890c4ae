"""`Lambda`: a function of tensors used as a layer."""

from __future__ import annotations

import inspect
import types
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from birnn.layers.layer import Layer


def _serialize_callable(fn: Any) -> Any:
    from birnn.saving import lambdas, serialization

    if lambdas.is_lambda(fn):
        return lambdas.serialize_lambda(fn)
    return serialization.serialize_keras_object(fn)


def _deserialize_callable(config: Any, custom_objects: dict | None, what: str) -> Any:
    from birnn.saving import lambdas, serialization

    if isinstance(config, dict) and config.get("class_name") == "__lambda__":
        return lambdas.deserialize_lambda(config["config"], custom_objects, what=what)
    if isinstance(config, dict) and "class_name" in config:
        return serialization.deserialize_keras_object(config, custom_objects)
    if isinstance(config, str) and custom_objects and config in custom_objects:
        return custom_objects[config]
    return config


class Lambda(Layer):
    """Wraps an arbitrary function of tensors as a `Layer`.

    Best for quick, weightless expressions; anything with weights or state
    belongs in a `Layer` subclass. A `Lambda` with a Python `lambda` is saved,
    as in Keras, as the lambda's marshalled bytecode: such a file only loads with
    `load_model(..., safe_mode=False)` (it runs code from the file), and only in
    the Python version that wrote it. A named function is saved by name and
    found again through `custom_objects` or `birnn.saving.register_keras_serializable`.

    Args:
        function: The function, called as `function(inputs, **arguments)` (plus
            `mask=`/`training=` when it accepts them).
        output_shape: The output shape without the batch axis (a tuple), or a
            function of the full input shape; inferred by running the function
            when `None`.
        mask: `None` (the output carries no mask), a function
            `mask(inputs, previous_mask)` computing the output mask, or a
            tensor used as the output mask whatever the input.
        arguments: Optional dict of keyword arguments for `function`.
        **kwargs: Base layer arguments.

    Call arguments:
        inputs: Tensor(s) passed to `function`.
        mask: The inputs' mask (passed on if `function` takes `mask`).
        training: Passed on if `function` takes `training`.

    Examples:

    >>> import torch
    >>> layer = Lambda(lambda x, power=1: x**power, arguments={"power": 2})
    >>> layer(torch.tensor([[1.0, 2.0, 3.0]]))
    tensor([[1., 4., 9.]])
    >>> layer.compute_output_shape((None, 3))
    (None, 3)
    """

    def __init__(
        self,
        function: Callable,
        output_shape: Any = None,
        mask: Any = None,
        arguments: dict | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if not callable(function):
            raise TypeError(
                f"Lambda: argument `function` must be callable. Received: {function!r}"
            )
        if arguments is not None and not isinstance(arguments, dict):
            raise TypeError(
                f"Lambda: argument `arguments` must be a dict. Received: {arguments!r}"
            )
        if output_shape is not None and not callable(output_shape):
            try:
                output_shape = tuple(output_shape)
            except TypeError:
                raise TypeError(
                    "Lambda: argument `output_shape` must be a tuple or a function. "
                    f"Received: {output_shape!r}"
                ) from None
        self.function = function
        self.arguments = dict(arguments or {})
        self._output_shape = output_shape
        self.mask = mask
        self.supports_masking = mask is not None
        try:
            params = inspect.signature(function).parameters
        except (TypeError, ValueError):
            params = types.MappingProxyType({})
        takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
        self._fn_takes_mask = takes_any or "mask" in params
        self._fn_takes_training = takes_any or "training" in params
        self.built = True

    def call(self, inputs: Any, mask: Any = None, training: bool | None = None) -> Any:
        kwargs = dict(self.arguments)
        if self._fn_takes_mask:
            kwargs["mask"] = mask
        if self._fn_takes_training:
            kwargs["training"] = training
        return self.function(inputs, **kwargs)

    def compute_mask(self, inputs: Any, mask: Any = None) -> Any:
        if self.mask is None:
            return None
        if callable(self.mask):
            return self.mask(inputs, mask)
        return torch.as_tensor(self.mask)

    def compute_output_shape(self, input_shape: Any) -> Any:
        if self._output_shape is None:
            return super().compute_output_shape(input_shape)
        if callable(self._output_shape):
            return self._output_shape(input_shape)
        first = input_shape
        while isinstance(first, list) and first:
            first = first[0]
        batch = first[0] if isinstance(first, tuple) and first else None
        return (batch, *self._output_shape)

    def get_config(self) -> dict:
        config = {**super().get_config(), "function": _serialize_callable(self.function)}
        if self._output_shape is not None:
            config["output_shape"] = (
                _serialize_callable(self._output_shape)
                if callable(self._output_shape)
                else list(self._output_shape)
            )
        if self.mask is not None:
            if callable(self.mask):
                config["mask"] = _serialize_callable(self.mask)
            else:
                from birnn.saving.serialization import serialize_keras_object

                config["mask"] = serialize_keras_object(np.asarray(self.mask))
        from birnn.saving.serialization import serialize_keras_object

        config["arguments"] = serialize_keras_object(self.arguments)
        return config

    @classmethod
    def from_config(cls, config: dict, custom_objects: dict | None = None) -> Lambda:
        """Rebuilds the layer; a Python lambda in `config` loads only outside safe mode."""
        from birnn.saving.serialization import deserialize_keras_object

        config = dict(config)
        what = "a `Lambda` layer whose `{}` is a Python lambda"
        config["function"] = _deserialize_callable(
            config["function"], custom_objects, what.format("function")
        )
        if not callable(config["function"]):
            raise TypeError(
                f"Lambda '{config.get('name')}': could not find the function "
                f"{config['function']!r}; pass it in `custom_objects`."
            )
        for key in ("output_shape", "mask"):
            value = config.get(key)
            if isinstance(value, dict):
                config[key] = _deserialize_callable(value, custom_objects, what.format(key))
        if isinstance(config.get("arguments"), dict):
            config["arguments"] = deserialize_keras_object(config["arguments"], custom_objects)
        return cls(**config)
