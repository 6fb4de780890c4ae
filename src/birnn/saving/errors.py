"""The errors that saving and loading raise.

Every error names the file (and the layer or weight, where there is one), so a
failed load says what to fix. All derive from `ValueError`; the ones about a
file's bytes derive from `OSError` too, so `except OSError` catches a truncated
file as it catches a missing one.
"""

from __future__ import annotations


class SavingError(ValueError):
    """Base class of the errors raised by `birnn.saving`."""


class FileFormatError(SavingError, OSError):
    """A file is truncated, corrupt, or not in the format its name promises.

    Examples:

    >>> issubclass(FileFormatError, ValueError), issubclass(FileFormatError, OSError)
    (True, True)
    """

    def __str__(self) -> str:  # OSError would otherwise format `args` as (errno, strerror)
        return str(self.args[0]) if self.args else ""


class WeightsMismatchError(SavingError):
    """Saved weights do not fit the model: missing, extra, or of the wrong shape."""


class UnknownObjectError(SavingError, TypeError):
    """A config names a class or function that birnn cannot find.

    Pass it in `custom_objects`, or register it with
    `birnn.saving.register_keras_serializable()`.
    """


class ConfigError(SavingError, TypeError):
    """A saved config names a known class that cannot be rebuilt from it."""
