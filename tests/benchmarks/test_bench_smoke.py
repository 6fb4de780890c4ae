"""`benchmarks/run.py --quick` runs every row of every implementation (timing nothing)."""

import importlib.util
import sys
from pathlib import Path

import torch

RUN_PY = Path(__file__).resolve().parents[2] / "benchmarks" / "run.py"


def _load():
    spec = importlib.util.spec_from_file_location("birnn_benchmarks_run", RUN_PY)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_quick_run_writes_the_table(tmp_path, capsys):
    run = _load()
    threads = torch.get_num_threads()
    output = tmp_path / "RESULTS.md"
    args = ["--quick", "--repeats", "1", "--warmup", "0", "--no-memory", "--no-fit"]
    args += ["--no-serving"]
    args += ["--output", str(output)]
    assert run.main(args) == 0
    assert torch.get_num_threads() == threads
    table = output.read_text()
    for row in run.ROWS:
        assert f"| {row.name} |" in table
    assert "Masked / unmasked LSTM train" in table
    assert "| LSTM train |" in capsys.readouterr().out


def test_memory_child_reports_its_peak_rss(capsys):
    """What each memory subprocess runs (here in-process, to stay fast)."""
    run = _load()
    run._memory_child("birnn", quick=True, steps=1)
    before, peak = (float(v) for v in capsys.readouterr().out.split())
    assert peak >= before > 0


def test_fit_overhead_row_renders():
    run = _load()
    sys.path.insert(0, str(RUN_PY.parent))
    import fit_overhead

    rows = fit_overhead.run(quick=True, batches=2, repeats=1)
    assert rows[0]["birnn"] > 0 and rows[0]["keras_torch"] > 0
    table = run.render_fit(rows)
    assert f"| {fit_overhead.ROW} |" in table


def test_serving_row_renders():
    sys.path.insert(0, str(RUN_PY.parent))
    import serving

    result = serving.run(quick=True)
    assert result["birnn"] > 0 and result["onnxruntime"] > 0
    assert result["max_abs_diff"] < 1e-5
    assert "birnn / onnxruntime" in serving.render(result)
