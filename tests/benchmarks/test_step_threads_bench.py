"""`benchmarks/step_threads.py` runs on a tiny size (timing nothing)."""

import importlib.util
from pathlib import Path


def test_step_threads_ladder_runs_and_restores_the_rule(monkeypatch, capsys):
    """`benchmarks/step_threads.py` times both thread counts on a size and leaves the
    size rule of `birnn.models.trainer` as it found it."""
    from birnn.models import trainer

    path = Path(__file__).resolve().parents[2] / "benchmarks" / "step_threads.py"
    spec = importlib.util.spec_from_file_location("birnn_benchmarks_step_threads", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setattr(module, "SIZES", [(4, 3, 2, 2)])
    rule = trainer._ONE_THREAD_STEP_WORK
    assert module.main(["--turns", "1", "--seconds", "0"]) == 0
    assert trainer._ONE_THREAD_STEP_WORK == rule
    out = capsys.readouterr().out
    assert "(4, 3, 2, 2) work" in out and "train" in out and "predict" in out
