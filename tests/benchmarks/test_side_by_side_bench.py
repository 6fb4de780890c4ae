"""`benchmarks/side_by_side.py --phases` runs on a tiny problem (timing nothing)."""

import importlib.util
import sys
from pathlib import Path

import torch

from birnn.ops import side_by_side

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "side_by_side.py"


def test_phases_report_each_implementation_and_the_overlap(monkeypatch, capsys):
    spec = importlib.util.spec_from_file_location("birnn_benchmarks_side_by_side", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    threads = torch.get_num_threads()
    argv = ["side_by_side.py", "--phases", "--kinds", "lstm,gru", "--size", "4,3,2,5"]
    monkeypatch.setattr(sys, "argv", [*argv, "--rounds", "1", "--block-seconds", "0"])
    module.main()
    report = capsys.readouterr().out
    for kind in ("lstm", "gru"):
        assert f"{kind} train, batch 4, 3 steps, 2 features, 5 units" in report
    rows = [line.strip() for line in report.splitlines() if line.startswith("  ")]
    for name in ("birnn side by side ", "birnn sequential ", "torch ", "one direction alone"):
        assert sum(row.startswith(name) for row in rows) == 2
    assert report.count("side by side / one direction alone: forward") == 2
    assert torch.get_num_threads() == threads
    assert side_by_side.get_mode() == "auto"
