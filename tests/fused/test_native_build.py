"""Building and loading the native kernels (`birnn.ops.native_build`)."""

import os
import warnings

import pytest

from birnn.ops import native_build, native_rnn


def test_the_native_kernels_run_where_they_must():
    """In CI (`CI=true`; `make test` builds them first) and under `BIRNN_NATIVE=on` the
    native kernels run: a broken build never passes there as a silent fallback."""
    if os.environ.get("CI") == "true" or native_build.mode() == "on":
        assert native_rnn.enabled(), "birnn's native kernels must run here: see the warning"


@pytest.mark.parametrize(
    ("value", "expected"),
    [("1", "on"), ("TRUE", "on"), (" on ", "on"), ("0", "off"), ("false", "off")]
    + [("Off", "off"), ("", "auto"), ("auto", "auto")],
)
def test_mode_from_the_environment(monkeypatch, value, expected):
    monkeypatch.setenv("BIRNN_NATIVE", value)
    assert native_build.mode() == expected


def test_mode_defaults_to_auto_and_rejects_anything_else(monkeypatch):
    monkeypatch.delenv("BIRNN_NATIVE", raising=False)
    assert native_build.mode() == "auto"
    monkeypatch.setenv("BIRNN_NATIVE", "sometimes")
    with pytest.raises(ValueError, match="BIRNN_NATIVE.*'sometimes'"):
        native_build.mode()


def test_cache_dir_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("BIRNN_CACHE_DIR", str(tmp_path / "explicit"))
    assert native_build.cache_dir() == tmp_path / "explicit"
    monkeypatch.delenv("BIRNN_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert native_build.cache_dir() == tmp_path / "birnn"
    assert native_build.library_path().parent == tmp_path / "birnn"


def test_library_path_follows_the_source_and_the_compiler(monkeypatch, tmp_path):
    text = native_build._SOURCE.read_text()
    copy = tmp_path / "rnn_kernels.cpp"
    copy.write_text(text)
    monkeypatch.setattr(native_build, "_SOURCE", copy)
    original = native_build.library_path()
    assert original.name.startswith("birnn_native_") and original.suffix == ".so"
    copy.write_text(text + "\n// one more comment\n")
    edited = native_build.library_path()
    assert edited != original and edited.parent == original.parent
    copy.write_text(text)
    assert native_build.library_path() == original
    monkeypatch.setenv("CXX", "g++-compatible-compiler")
    assert native_build.library_path() != original


@pytest.fixture
def broken_compiler(monkeypatch, tmp_path):
    """A compiler that fails, and an empty cache folder: the folder is returned."""
    monkeypatch.setenv("CXX", "false")
    monkeypatch.setenv("BIRNN_CACHE_DIR", str(tmp_path))
    return tmp_path


def _left_in(cache):
    return sorted(p.name for p in cache.iterdir() if p.suffix != ".lock")


def test_a_failing_compiler_raises_and_leaves_no_partial_library(broken_compiler):
    with pytest.raises(native_build.NativeBuildError, match="rnn_kernels.cpp failed"):
        native_build.build()
    assert _left_in(broken_compiler) == []


def test_a_missing_compiler_raises(monkeypatch, broken_compiler):
    monkeypatch.setenv("CXX", str(broken_compiler / "no-such-compiler"))
    with pytest.raises(native_build.NativeBuildError, match="could not build"):
        native_build.build()
    assert _left_in(broken_compiler) == []


def test_try_load_warns_in_auto_and_raises_when_on(broken_compiler):
    with pytest.warns(RuntimeWarning, match="PyTorch's own RNN kernels"):
        assert native_build._try_load("auto") is False
    with pytest.raises(native_build.NativeBuildError, match="failed"):
        native_build._try_load("on")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert native_build._try_load("off") is False  # nothing built, nothing said
    assert _left_in(broken_compiler) == []
