"""The skip policy (`tests/_skip_policy.py`) fails a run that skips outside its allow-list.

Each case runs pytest in a subprocess on a tiny test file, with only the policy plugin
loaded (no torch, so each run takes about a second).
"""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _run_pytest(tmp_path: Path, source: str, *args: str) -> subprocess.CompletedProcess:
    (tmp_path / "pytest.ini").write_text("[pytest]\n")  # not the project's settings
    (tmp_path / "test_tiny.py").write_text(textwrap.dedent(source))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "COV_"))}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    command = [sys.executable, "-m", "pytest", "-p", "tests._skip_policy"]
    command += ["-p", "no:cacheprovider", "-q", *args, str(tmp_path)]
    return subprocess.run(
        command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )


UNLISTED_SKIP = """
    import pytest

    def test_runs():
        pass

    def test_skips():
        pytest.skip("the optional dependency is missing")
"""


@pytest.mark.parametrize("workers", ["0", "2"])
def test_a_skip_outside_the_allow_list_fails_the_run(tmp_path, workers):
    result = _run_pytest(tmp_path, UNLISTED_SKIP, "-n", workers)
    out = result.stdout + result.stderr
    assert result.returncode == 1, out
    assert "skips outside the allow-list" in out
    assert "test_tiny.py::test_skips: the optional dependency is missing" in out


def test_a_module_level_skip_outside_the_allow_list_fails_the_run(tmp_path):
    source = """
        import pytest

        pytest.skip("birnn.Model is not available", allow_module_level=True)

        def test_never_collected():
            pass
    """
    result = _run_pytest(tmp_path, source)
    out = result.stdout + result.stderr
    assert result.returncode == 1, out
    assert "birnn.Model is not available" in out


def test_an_allowed_skip_passes(tmp_path):
    source = """
        import pytest

        def test_runs():
            pass

        @pytest.mark.skipif(True, reason="needs a CUDA device")
        def test_on_gpu():
            pass
    """
    result = _run_pytest(tmp_path, source, "-n", "2")
    out = result.stdout + result.stderr
    assert result.returncode == 0, out
    assert "1 passed, 1 skipped" in out
    assert "allow-list" not in out
