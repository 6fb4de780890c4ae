"""Atomic writes: the target holds the old bytes or all the new ones, never a mix."""

import errno
import os
import stat

import pytest

from birnn.saving import atomic


def _leftovers(directory):
    return [name for name in os.listdir(directory) if ".tmp-" in name]


def test_write_bytes_creates_and_replaces(tmp_path):
    target = tmp_path / "f.bin"
    atomic.write_bytes(target, b"one")
    assert target.read_bytes() == b"one"
    atomic.write_bytes(target, b"two" * 1_000_000)
    assert target.read_bytes() == b"two" * 1_000_000
    assert _leftovers(tmp_path) == []


def test_exception_midway_keeps_old_file(tmp_path):
    target = tmp_path / "f.bin"
    target.write_bytes(b"old contents")
    with pytest.raises(RuntimeError, match="boom"):
        with atomic.atomic_open(target) as f:
            f.write(b"half of the new")
            raise RuntimeError("boom")
    assert target.read_bytes() == b"old contents"
    assert _leftovers(tmp_path) == []


def test_full_disk_keeps_old_file(tmp_path, monkeypatch):
    target = tmp_path / "f.bin"
    target.write_bytes(b"old contents")

    def no_space(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(atomic.os, "fsync", no_space)
    with pytest.raises(OSError, match="No space"):
        atomic.write_bytes(target, b"new contents")
    assert target.read_bytes() == b"old contents"
    assert _leftovers(tmp_path) == []


def test_new_file_gets_umask_mode_and_existing_mode_is_kept(tmp_path):
    fresh = tmp_path / "fresh.bin"
    atomic.write_bytes(fresh, b"x")
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(fresh.stat().st_mode) == 0o666 & ~umask
    kept = tmp_path / "kept.bin"
    kept.write_bytes(b"x")
    kept.chmod(0o640)
    atomic.write_bytes(kept, b"y")
    assert stat.S_IMODE(kept.stat().st_mode) == 0o640
