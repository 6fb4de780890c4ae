"""Build and load birnn's native kernels (`csrc/rnn_kernels.cpp`), once per machine.

The C++ source ships with the package and is compiled against the installed
PyTorch the first time it is needed (about 15-30 s), with the system's C++
compiler (`$CXX`, else `c++`), into a cache folder: `$BIRNN_CACHE_DIR`, else
`$XDG_CACHE_HOME/birnn`, else `~/.cache/birnn`. The library's name carries a
hash of the source, the compiler command, PyTorch's version and the Python
ABI, so an upgrade of any of them builds a new one, and a library is never
loaded into a PyTorch it was not built for. Builds are atomic (written to a
temporary file, then renamed) and serialized by a lock file, so concurrent
processes (test workers, data loaders) build it once.

`python -m birnn.ops.native_build` builds it ahead of time (`make` does) and
prints where it is. The environment variable `BIRNN_NATIVE` chooses whether
the kernels are used: `auto` (the default: built when first needed, and
skipped with one warning if that fails), `off` (never), or `on` (a failed
build raises).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shlex
import subprocess
import sys
import sysconfig
import tempfile
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path

import torch

__all__ = ["NativeBuildError", "build", "cache_dir", "library_path", "load", "mode"]

_SOURCE = Path(__file__).with_name("csrc") / "rnn_kernels.cpp"
_ENVIRONMENT = "BIRNN_NATIVE"
_MODES = ("auto", "on", "off")
_FLAGS = ("-O3", "-std=c++17", "-fPIC", "-shared", "-fopenmp", "-fvisibility=hidden")

_lock = threading.Lock()
_loaded: bool | None = None  # None: not tried yet


class NativeBuildError(RuntimeError):
    """The native kernels could not be compiled or loaded."""


def mode() -> str:
    """`BIRNN_NATIVE`, normalised to `"auto"`, `"on"` or `"off"`."""
    value = os.environ.get(_ENVIRONMENT, "auto").strip().lower()
    value = {"1": "on", "true": "on", "0": "off", "false": "off", "": "auto"}.get(value, value)
    if value not in _MODES:
        raise ValueError(
            f"birnn: environment variable `{_ENVIRONMENT}` must be one of {_MODES}. "
            f"Received: {value!r}"
        )
    return value


def cache_dir() -> Path:
    """Where built libraries are kept (see the module docstring)."""
    explicit = os.environ.get("BIRNN_CACHE_DIR")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "birnn"


def _torch_paths() -> tuple[list[str], str]:
    root = Path(torch.__file__).parent
    includes = [
        str(root / "include"),
        str(root / "include" / "torch" / "csrc" / "api" / "include"),
    ]
    return includes, str(root / "lib")


def _command(output: Path) -> list[str]:
    includes, lib = _torch_paths()
    abi = int(torch._C._GLIBCXX_USE_CXX11_ABI)
    compiler = shlex.split(os.environ.get("CXX", "c++"))
    return [
        *compiler,
        *_FLAGS,
        f"-D_GLIBCXX_USE_CXX11_ABI={abi}",
        *(f"-I{path}" for path in includes),
        str(_SOURCE),
        "-o",
        str(output),
        f"-L{lib}",
        "-lc10",
        "-ltorch_cpu",
    ]


def library_path() -> Path:
    """The library this source, compiler command, PyTorch and Python build to."""
    digest = hashlib.sha256()
    digest.update(_SOURCE.read_bytes())
    digest.update(" ".join(_command(Path("out"))).encode())
    digest.update(torch.__version__.encode())
    digest.update((sysconfig.get_config_var("SOABI") or sys.version).encode())
    return cache_dir() / f"birnn_native_{digest.hexdigest()[:16]}.so"


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    import fcntl  # POSIX only, as the build itself

    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def build() -> Path:
    """Compile the kernels if this machine has no current build; return the library's path.

    Raises:
        NativeBuildError: the compiler is missing or failed (its output is in the message).
    """
    target = library_path()
    if target.exists():
        return target
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with _file_lock(target.with_suffix(".lock")):
            if target.exists():  # another process built it meanwhile
                return target
            handle, temporary = tempfile.mkstemp(
                prefix=target.stem, suffix=".so.tmp", dir=target.parent
            )
            os.close(handle)
            try:
                result = subprocess.run(
                    _command(Path(temporary)), capture_output=True, text=True, check=False
                )
                if result.returncode != 0:
                    raise NativeBuildError(
                        f"birnn: compiling {_SOURCE.name} failed "
                        f"(exit {result.returncode}):\n{result.stderr[-4000:]}"
                    )
                os.replace(temporary, target)
            finally:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(temporary)
    except OSError as error:
        raise NativeBuildError(f"birnn: could not build the native kernels: {error}") from error
    return target


def load() -> bool:
    """Whether the native kernels are loaded (`torch.ops.birnn_native`), building them if needed.

    The first call decides, once per process: `BIRNN_NATIVE=off` never loads
    them; `auto` warns once and carries on without them if they cannot be built
    or loaded; `on` raises `NativeBuildError` instead.
    """
    global _loaded
    if _loaded is not None:
        return _loaded
    with _lock:
        if _loaded is None:
            _loaded = _try_load(mode())
    return _loaded


def _try_load(how: str) -> bool:
    if how == "off" or sys.platform == "win32":
        return False
    try:
        torch.ops.load_library(str(build()))
    except (NativeBuildError, OSError, RuntimeError) as error:
        if how == "on":
            raise NativeBuildError(str(error)) from error
        warnings.warn(
            f"{error}\nbirnn carries on with PyTorch's own RNN kernels "
            f"(set {_ENVIRONMENT}=off to skip the native ones).",
            RuntimeWarning,
            stacklevel=3,
        )
        return False
    return True


if __name__ == "__main__":
    print(build())
