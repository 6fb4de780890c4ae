"""Atomic file writes: the target name holds the old file or the whole new one, never half.

The bytes go to a temporary file in the target's directory (same file system,
so the final rename is atomic), are flushed and `fsync`ed, and only then
`os.replace`d over the target; the directory is `fsync`ed after the rename so
the new name survives a power cut. On any error (a full disk, an exception in
the writer) the temporary file is removed and the target is untouched. A
process killed outright can leave a `.<name>.tmp-*` file behind, never a
damaged target.

A symbolic link is written through, as `open(path, "w")` would: the file it
resolves to is replaced (atomically, next to it) and the link stays a link.

When the target's directory does not allow creating the temporary file but the
target is an existing writable file, the file is rewritten in place instead:
the new bytes are first written in full to a temporary file elsewhere, the old
contents are copied to a backup file in the system's temporary directory, and
only then is the target overwritten. If that fails, the old contents are put
back; if even that fails, the error names the backup that holds them.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from typing import BinaryIO

_CHUNK = 1 << 20


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike) -> Iterator[BinaryIO]:
    """Opens a temporary binary file that replaces `path` when the block succeeds.

    Args:
        path: The file to (re)write; a symbolic link is followed.

    Yields:
        A writable binary file object.

    Raises:
        PermissionError: naming `path`, if neither an atomic replacement nor a
            safe in-place rewrite is allowed. The old file is left as it was.

    Examples:

    >>> import os, tempfile
    >>> target = os.path.join(tempfile.mkdtemp(), "data.bin")
    >>> with atomic_open(target) as f:
    ...     _ = f.write(b"new")
    >>> open(target, "rb").read()
    b'new'
    """
    user_path = os.fspath(path)
    path = os.path.realpath(user_path)
    directory = os.path.dirname(path)
    try:
        fd, tmp_path = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.tmp-", dir=directory)
    except PermissionError as error:
        if not _is_writable_file(path):
            raise PermissionError(
                error.errno,
                f"Cannot save to this path: its directory {directory!r} does not allow "
                "creating files, and it is not an existing file that can be overwritten",
                user_path,
            ) from None
        with _in_place(path, user_path) as f:
            yield f
        return
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


def _is_writable_file(path: str) -> bool:
    if not os.path.isfile(path):
        return False
    try:
        with open(path, "r+b"):
            return True
    except OSError:
        return False


@contextlib.contextmanager
def _in_place(path: str, user_path: str) -> Iterator[BinaryIO]:
    """Yields a spool file whose contents then overwrite `path` in place (see the module)."""
    with tempfile.TemporaryFile() as spool:
        yield spool
        spool.flush()
        _overwrite(path, user_path, spool)


def _overwrite(path: str, user_path: str, source: BinaryIO) -> None:
    """Copies `source` over the contents of `path`, restoring them if that fails."""
    backup_fd, backup_path = tempfile.mkstemp(prefix=f"{os.path.basename(path)}.backup-")
    with open(path, "r+b") as target, os.fdopen(backup_fd, "w+b") as backup:
        shutil.copyfileobj(target, backup, _CHUNK)
        backup.flush()
        os.fsync(backup.fileno())
        try:
            _copy_over(source, target)
        except BaseException as error:
            try:
                _copy_over(backup, target)
            except BaseException:
                raise OSError(
                    f"Saving to {user_path!r} failed midway ({error}) and its old contents "
                    f"could not be written back; they are kept in {backup_path!r}."
                ) from error
            with contextlib.suppress(OSError):
                os.unlink(backup_path)
            raise
    os.unlink(backup_path)


def _copy_over(source: BinaryIO, target: BinaryIO) -> None:
    source.seek(0)
    target.seek(0)
    target.truncate()
    shutil.copyfileobj(source, target, _CHUNK)
    target.flush()
    os.fsync(target.fileno())


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
