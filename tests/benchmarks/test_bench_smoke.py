"""`benchmarks/run.py --quick` runs every row of every implementation (timing nothing)."""

import importlib.util
import json
import os
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


QUICK = ["--quick", "--repeats", "1", "--warmup", "0", "--no-memory", "--no-fit"]
QUICK += ["--no-serving", "--no-peers"]


def test_quick_run_writes_the_table(tmp_path, capsys):
    """Every row in this process (`--in-process`), so that all of them stay fast."""
    run = _load()
    threads = torch.get_num_threads()
    output = tmp_path / "RESULTS.md"
    assert run.main([*QUICK, "--in-process", "--output", str(output)]) == 0
    assert torch.get_num_threads() == threads
    table = output.read_text()
    for row in run.ROWS:
        assert f"| {row.name} |" in table
    assert "Masked / unmasked LSTM train" in table
    assert "All rows ran in this one process" in table
    assert "| LSTM train |" in capsys.readouterr().out


def test_each_row_runs_in_a_fresh_process_of_its_own(tmp_path, monkeypatch):
    """By default no row is timed here, and no two rows share a process."""
    run = _load()

    def in_this_process(*args, **kwargs):
        raise AssertionError("a row was timed in the parent process")

    monkeypatch.setattr(run, "time_row", in_this_process)
    alone, pids = run.time_row_alone, []

    def recorded(*args):
        medians, pid = alone(*args)
        pids.append(pid)
        return medians, pid

    monkeypatch.setattr(run, "time_row_alone", recorded)
    output = tmp_path / "RESULTS.md"
    args = [*QUICK, "--rows", "LSTM infer", "--only", "birnn-model,torch", "--output", str(output)]
    assert run.main(args) == 0
    assert len(pids) == len(set(pids)) == 2 and os.getpid() not in pids
    table = output.read_text()
    assert "Each row runs in a fresh process of its own" in table
    main_table = table.split("## Peers")[0]
    for name in ("LSTM infer", "LSTM infer, masked"):
        line = next(line for line in main_table.splitlines() if line.startswith(f"| {name} |"))
        assert "n/a" not in line  # birnn Model, torch and birnn Model / torch
    assert " (packed) " in line


def test_memory_child_reports_its_peak_rss():
    """What each memory subprocess runs (here in-process, to stay fast)."""
    run = _load()
    answer = run._memory_child("birnn", quick=True, steps=1)
    assert answer["peak"] >= answer["before"] > 0


def test_fit_overhead_row_renders():
    run = _load()
    sys.path.insert(0, str(RUN_PY.parent))
    import fit_overhead

    rows = fit_overhead.run(quick=True, batches=2, repeats=1)
    assert rows[0]["birnn"] > 0 and rows[0]["keras_torch"] > 0
    table = run.render_fit(rows)
    assert f"| {fit_overhead.ROW} |" in table


def test_serving_row_renders(tmp_path, monkeypatch):
    """The serving row is a part timed in a child (simulated here, to stay fast)."""
    run = _load()
    import serving

    asked = []

    def in_child(arguments, quick):  # what `in_child` runs, in this process
        asked.append(arguments)
        answer = tmp_path / "answer.json"
        assert run.main([*arguments, "--child-output", str(answer), "--quick"]) == 0
        return json.loads(answer.read_text())

    monkeypatch.setattr(run, "in_child", in_child)
    result = run.part("serving", quick=True)
    assert asked == [["--part-child", "serving"]]
    assert result["birnn"] > 0 and result["onnxruntime"] > 0
    assert result["max_abs_diff"] < 1e-5
    assert "birnn / onnxruntime" in serving.render(result)


def test_peers_run_in_their_own_process_and_render(tmp_path):
    """A peer is any Python with Keras: here this one, on torch, through `peers.py`."""
    run = _load()
    rows = [run._quick(row) for row in run.ROWS if row.name in ("LSTM infer", "GRU infer, masked")]
    timing = {"repeats": 1, "warmup": 0, "min_seconds": 0, "block_seconds": 0}
    missing = tmp_path / "no-such-venv" / "bin" / "python"
    peers, notes = run.run_peers(
        rows, {"keras-tf": (Path(sys.executable), "torch"), "keras-jax": (missing, "jax")}, timing
    )
    assert set(peers) == {"keras-tf"}
    assert peers["keras-tf"]["backend"] == "torch"
    assert set(peers["keras-tf"]["medians"]) == {row.name for row in rows}
    assert all(ms > 0 for ms in peers["keras-tf"]["medians"].values())
    assert len(notes) == 1 and "make bench-peers" in notes[0] and str(missing) in notes[0]

    medians = {"birnn-model": 2.0, "torch": 4.0, "keras-model": 8.0}
    table = run.render_peers([(row, medians) for row in rows], peers, notes)
    for row in rows:
        line = next(line for line in table.splitlines() if line.startswith(f"| {row.name} |"))
        fastest_peer = min(4.0, 8.0, peers["keras-tf"]["medians"][row.name])
        assert line.endswith(f" | {2.0 / fastest_peer:.2f}x | n/a |")  # no compiled model
        fastest = min(2.0, fastest_peer)
        assert line.count("**") == 2 and f"**{run._ms(fastest)}**" in line
    assert "(packed)" in table  # hand torch packs the masked row
    assert "make bench-peers" in table


def test_a_failing_peer_is_reported_not_fatal(tmp_path):
    run = _load()
    broken = tmp_path / "python"
    broken.write_text("#!/bin/sh\necho 'no keras here' >&2\nexit 3\n")
    broken.chmod(0o755)
    timing = {"repeats": 1, "warmup": 0, "min_seconds": 0, "block_seconds": 0}
    peers, notes = run.run_peers([run._quick(run.ROWS[0])], {"keras-jax": (broken, "jax")}, timing)
    assert peers == {}
    assert notes == ["keras-jax failed (exit 3): no keras here"]


def test_each_rows_peers_run_right_after_it_and_a_failed_peer_stops(tmp_path, monkeypatch):
    """Row by row: the row's own process, then its peers, so that a slow spell of the
    machine falls on one row's implementations alike; a peer that fails once is not
    started again, and the table still renders."""
    run = _load()
    calls: list = []

    def row_alone(row, *args):
        calls.append(("row", row.name))
        return {"birnn-model": 1.0, "torch": 2.0}, 0

    def peers_of(rows, pythons, timing):
        (row,) = rows
        calls.append(("peers", row.name, sorted(pythons)))
        result = {
            "medians": {row.name: 1.5},
            "jit_compile": {row.name: "True"},
            "versions": {"keras": "3"},
        }
        found = {"keras-jax": result} if "keras-jax" in pythons else {}
        notes = ["keras-tf failed (exit 3): broken"] if "keras-tf" in pythons else []
        return found, notes

    monkeypatch.setattr(run, "time_row_alone", row_alone)
    monkeypatch.setattr(run, "run_peers", peers_of)
    monkeypatch.setattr(
        run, "peer_pythons", lambda: {"keras-tf": ("tf", "tensorflow"), "keras-jax": ("j", "jax")}
    )
    quick = [arg for arg in QUICK if arg != "--no-peers"]
    output = tmp_path / "RESULTS.md"
    args = [*quick, "--rows", "seed model", "--only", "birnn-model,torch", "--output", str(output)]
    assert run.main(args) == 0
    seed_rows = [row.name for row in run.ROWS if row.name.startswith("seed model")]
    assert calls == [
        ("row", seed_rows[0]),
        ("peers", seed_rows[0], ["keras-jax", "keras-tf"]),
        ("row", seed_rows[1]),
        ("peers", seed_rows[1], ["keras-jax"]),
    ]
    table = output.read_text()
    assert "keras-tf failed (exit 3): broken" in table
    for name in seed_rows:
        assert next(line for line in table.splitlines() if line.startswith(f"| {name} |"))
