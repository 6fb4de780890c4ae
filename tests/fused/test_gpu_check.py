"""`benchmarks/gpu_check.sh` where torch sees no CUDA: it says so and stops, fast.

The script's GPU parts (the CUDA tests and the bench rows on the GPU) need a CUDA
device; these tests pin down what happens around them on any machine
(`CUDA_VISIBLE_DEVICES=""` hides a GPU that might be there).
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "gpu_check.sh"

pytestmark = pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")


def _run(out: Path, *args: str) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "BIRNN_PYTHON": sys.executable,
        "CUDA_VISIBLE_DEVICES": "",
        "TORCH_REINSTALL": "0",
    }
    return subprocess.run(
        ["bash", str(SCRIPT), str(out), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_without_cuda_it_reports_no_cuda_and_fails(tmp_path):
    done = _run(tmp_path / "out")
    assert done.returncode == 2, done.stdout + done.stderr
    assert "no CUDA: torch sees no CUDA device here, so nothing was run" in done.stdout
    summary = (tmp_path / "out" / "summary.md").read_text()
    assert "no CUDA" in summary and "cuda available False" in summary
    assert not (tmp_path / "out" / "cuda_tests.log").exists()  # nothing was run


def test_dry_run_prints_the_bounded_plan(tmp_path):
    done = _run(tmp_path / "out", "--dry-run")
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    tests = next(line for line in lines if "-m pytest" in line)
    bench = next(line for line in lines if "benchmarks/run.py" in line)
    assert (
        tests.strip().startswith("- timeout 90 ")
        and "-k (cuda or gpu) and not gpu_check tests" in tests
    )
    assert bench.strip().startswith("- timeout 180 ")
    assert "--device cuda --peer-rows --in-process" in bench and "torch,keras-model" in bench
    assert "the real run would stop here (exit 2)" in done.stdout


def test_usage_errors(tmp_path):
    assert _run(tmp_path / "out", "--bogus").returncode == 64
    done = subprocess.run(["bash", str(SCRIPT)], capture_output=True, text=True)
    assert done.returncode == 64 and "usage:" in done.stderr
