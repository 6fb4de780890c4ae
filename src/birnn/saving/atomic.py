"""Atomic file writes: the target name holds the old file or the whole new one, never half.

The bytes go to a temporary file in the target's directory (same file system,
so the final rename is atomic), are flushed and `fsync`ed, and only then
`os.replace`d over the target; the directory is `fsync`ed after the rename so
the new name survives a power cut. On any error (a full disk, an exception in
the writer) the temporary file is removed and the target is untouched. A
process killed outright can leave a `.<name>.tmp-*` file behind, never a
damaged target.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from typing import BinaryIO

_CHUNK = 1 << 20


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike) -> Iterator[BinaryIO]:
    """Opens a temporary binary file that replaces `path` when the block succeeds.

    Args:
        path: The file to (re)write.

    Yields:
        A writable binary file object.

    Examples:

    >>> import os, tempfile
    >>> target = os.path.join(tempfile.mkdtemp(), "data.bin")
    >>> with atomic_open(target) as f:
    ...     _ = f.write(b"new")
    >>> open(target, "rb").read()
    b'new'
    """
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp_path = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.tmp-", dir=directory)
    try:
        os.chmod(tmp_path, _target_mode(path))
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp_path, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp_path)
        raise
    _fsync_directory(directory)


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Atomically replaces the contents of `path` with `data`.

    Args:
        path: The file to (re)write.
        data: Its new contents.
    """
    view = memoryview(data)
    with atomic_open(path) as f:
        for start in range(0, len(view), _CHUNK):
            f.write(view[start : start + _CHUNK])


def _target_mode(path: str) -> int:
    """The existing file's permissions, else what `open()` would give a new file."""
    try:
        return os.stat(path).st_mode & 0o777
    except OSError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def _fsync_directory(directory: str) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # e.g. platforms that cannot open directories
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
