"""Python lambdas in configs, in Keras 3's `__lambda__` form, and the safe-mode rule.

Keras writes a lambda as `{"class_name": "__lambda__", "config": {"code": ...,
"defaults": ..., "closure": ...}}` (outside a layer, such as a `MultiOptimizer`'s
selector, as `{"value": [code, defaults, closure]}`), where `code` is the base64 text of the
`marshal`led code object. Loading one runs code from the file, so it is refused
unless safe mode is off: `load_model(..., safe_mode=False)`,
`deserialize_keras_object(..., safe_mode=False)`, or
`enable_unsafe_deserialization()` for the whole process. Marshalled code only
loads in the Python version that wrote it (as in Keras).

Examples:

>>> config = serialize_lambda(lambda x, k=2: x * k)
>>> config["class_name"], config["config"]["defaults"]
('__lambda__', [2])
>>> with safe_mode_scope(False):
...     fn = deserialize_lambda(config["config"])
>>> fn(3)
6
"""

from __future__ import annotations

import base64
import builtins
import contextlib
import marshal
import threading
import types
from collections.abc import Callable, Iterator
from typing import Any, TypeGuard

_state = threading.local()
_unsafe_everywhere = False

UNSAFE_HINT = (
    "This carries a potential risk of arbitrary code execution and thus it is disallowed by "
    "default. If you trust the source of the artifact, you can override this error by "
    "passing `safe_mode=False` to the loading function, or calling "
    "`birnn.saving.enable_unsafe_deserialization()`."
)


def enable_unsafe_deserialization() -> None:
    """Lets every later load run the Python lambdas a config holds (Keras's switch)."""
    global _unsafe_everywhere
    _unsafe_everywhere = True


def in_safe_mode() -> bool:
    """Whether loading code (lambdas) from configs is refused right now."""
    if _unsafe_everywhere:
        return False
    return getattr(_state, "safe_mode", True)


@contextlib.contextmanager
def safe_mode_scope(safe_mode: bool | None) -> Iterator[None]:
    """Sets the safe mode for the loads inside it (`None` keeps the current one)."""
    if safe_mode is None:
        yield
        return
    previous = getattr(_state, "safe_mode", True)
    _state.safe_mode = bool(safe_mode)
    try:
        yield
    finally:
        _state.safe_mode = previous


def is_lambda(fn: Any) -> TypeGuard[types.FunctionType]:
    """Whether `fn` is a Python lambda (or another function Keras saves as code)."""
    return isinstance(fn, types.FunctionType) and fn.__name__ == "<lambda>"


def serialize_lambda(fn: types.FunctionType) -> dict:
    """Keras's `__lambda__` config of a function: its marshalled code, defaults, closure."""
    code = base64.encodebytes(marshal.dumps(fn.__code__)).decode("ascii")
    closure = None if fn.__closure__ is None else [cell.cell_contents for cell in fn.__closure__]
    defaults = None if fn.__defaults__ is None else list(fn.__defaults__)
    return {
        "class_name": "__lambda__",
        "config": {"code": code, "defaults": defaults, "closure": closure},
    }


def deserialize_lambda(
    config: dict, custom_objects: dict | None = None, what: str = "a `lambda` object"
) -> Callable:
    """The function of a `__lambda__` config (refused in safe mode, naming `what`).

    The function's globals are the built-ins and `custom_objects`.

    Raises:
        SavingError: in safe mode (a `ValueError`), or for a malformed config.
    """
    from birnn.saving.errors import SavingError

    if in_safe_mode():
        raise SavingError(f"Requested the deserialization of {what}. {UNSAFE_HINT}")
    if "value" in config and "code" not in config:  # the form of a lambda outside a layer
        try:
            code_text, defaults, closure = config["value"]
        except (TypeError, ValueError) as e:
            raise SavingError(f"Malformed `__lambda__` config: {config!r}") from e
        config = {"code": code_text, "defaults": defaults, "closure": closure}
    try:
        raw = config["code"]
        if isinstance(raw, str):
            raw = base64.decodebytes(raw.encode("ascii"))
        code = marshal.loads(raw)
    except (KeyError, TypeError, ValueError, EOFError) as e:
        raise SavingError(
            f"Could not load a Python lambda from its saved config ({e}); marshalled code "
            "only loads in the Python version that saved it."
        ) from e
    defaults = config.get("defaults")
    closure = config.get("closure")
    cells = None if closure is None else tuple(types.CellType(v) for v in closure)
    namespace = {"__builtins__": builtins, **(custom_objects or {})}
    return types.FunctionType(
        code, namespace, code.co_name, None if defaults is None else tuple(defaults), cells
    )
