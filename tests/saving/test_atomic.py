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


def test_write_through_a_symlink_updates_its_target_and_keeps_the_link(tmp_path):
    volume = tmp_path / "volume"
    volume.mkdir()
    target = volume / "model.bin"
    target.write_bytes(b"old")
    link = tmp_path / "model.bin"
    link.symlink_to(os.path.relpath(target, tmp_path))
    chain = tmp_path / "latest.bin"
    chain.symlink_to(link)
    atomic.write_bytes(chain, b"new")
    assert chain.is_symlink() and link.is_symlink()
    assert target.read_bytes() == b"new"
    assert _leftovers(tmp_path) == [] and _leftovers(volume) == []


def test_write_through_a_dangling_symlink_creates_its_target(tmp_path):
    target = tmp_path / "sub" / "model.bin"
    target.parent.mkdir()
    link = tmp_path / "model.bin"
    link.symlink_to(target)
    atomic.write_bytes(link, b"new")
    assert link.is_symlink() and target.read_bytes() == b"new"


def test_model_save_through_a_symlink_updates_the_target(tmp_path):
    from birnn import Input, Sequential, saving
    from birnn.layers import Dense

    model = Sequential([Input(shape=(3,)), Dense(2)])
    volume = tmp_path / "volume"
    volume.mkdir()
    target = volume / "model.keras"
    target.write_bytes(b"placeholder")
    link = tmp_path / "model.keras"
    link.symlink_to(target)
    model.save(link)
    assert link.is_symlink() and target.read_bytes() != b"placeholder"
    loaded = saving.load_model(target)
    for a, b in zip(loaded.get_weights(), model.get_weights()):
        assert (a == b).all()


@pytest.fixture
def read_only_directory(tmp_path, monkeypatch):
    """`tmp_path` behaving as a directory nobody may create files in (even as root)."""
    real_mkstemp = atomic.tempfile.mkstemp

    def mkstemp(*args, dir=None, **kwargs):
        if dir is not None and os.path.samefile(dir, tmp_path):
            raise PermissionError(errno.EACCES, "Permission denied", os.path.join(dir, "x"))
        return real_mkstemp(*args, dir=dir, **kwargs)

    monkeypatch.setattr(atomic.tempfile, "mkstemp", mkstemp)
    return tmp_path


def test_writable_file_in_a_read_only_directory_is_rewritten_in_place(read_only_directory):
    target = read_only_directory / "f.bin"
    target.write_bytes(b"old contents, longer than the new")
    inode = target.stat().st_ino
    atomic.write_bytes(target, b"new")
    assert target.read_bytes() == b"new"
    assert target.stat().st_ino == inode
    assert _leftovers(read_only_directory) == []


def test_in_place_rewrite_failing_midway_restores_the_old_file(read_only_directory, monkeypatch):
    target = read_only_directory / "f.bin"
    target.write_bytes(b"old contents")
    real_fsync = os.fsync
    calls = []

    def fail_once(fd):
        calls.append(fd)
        if len(calls) == 2:  # the first fsync is the backup's, the second the target's
            raise OSError(errno.EIO, "Input/output error")
        return real_fsync(fd)

    monkeypatch.setattr(atomic.os, "fsync", fail_once)
    with pytest.raises(OSError, match="Input/output error"):
        atomic.write_bytes(target, b"new contents that never fully land")
    assert target.read_bytes() == b"old contents"


def test_exception_in_the_writer_leaves_the_file_untouched_in_place_mode(read_only_directory):
    target = read_only_directory / "f.bin"
    target.write_bytes(b"old contents")
    with pytest.raises(RuntimeError, match="boom"):
        with atomic.atomic_open(target) as f:
            f.write(b"half")
            raise RuntimeError("boom")
    assert target.read_bytes() == b"old contents"


def test_new_file_in_a_read_only_directory_names_the_users_path(read_only_directory):
    target = read_only_directory / "f.bin"
    with pytest.raises(PermissionError, match=f"'{target}'") as info:
        atomic.write_bytes(target, b"new")
    assert ".tmp-" not in str(info.value)
    assert not target.exists()
