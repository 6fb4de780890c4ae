"""`fit`/`evaluate`/`predict` under `DataParallel` with 2 CPU processes started by torchrun.

The workers (`_worker.py`) run on gloo over 127.0.0.1 only; every launch is bounded by a
timeout and its whole process group is killed when the test ends, whatever happens.
"""

from __future__ import annotations

import csv
import os
import signal
import socket
import subprocess
import sys

import numpy as np
import pytest
import torch

import birnn
from tests.distribution import _scenarios as sc

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
WORKER = os.path.join(ROOT, "tests", "distribution", "_worker.py")
LAUNCH_TIMEOUT = 120


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _torchrun(out_dir: str, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env.update(
        OMP_NUM_THREADS="1",
        GLOO_SOCKET_IFNAME="lo",
        KERAS_BACKEND="torch",
        PYTHONPATH=os.pathsep.join([os.path.join(ROOT, "src"), env.get("PYTHONPATH", "")]),
    )
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(name, None)
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nnodes=1",
        "--nproc_per_node=2",
        "--master_addr=127.0.0.1",
        f"--master_port={_free_port()}",
        "--local_addr=127.0.0.1",
        "--max_restarts=0",
        "--monitor_interval=0.2",
        WORKER,
        out_dir,
        *args,
    ]
    proc = subprocess.Popen(
        command,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        output, _ = proc.communicate(timeout=LAUNCH_TIMEOUT)
    except subprocess.TimeoutExpired:
        output = ""
        pytest.fail(f"torchrun did not finish within {LAUNCH_TIMEOUT}s")
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # the launcher and any worker left behind
        except ProcessLookupError:
            pass
        proc.wait()
    return subprocess.CompletedProcess(command, proc.returncode, output)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("data_parallel")
    done = _torchrun(str(out))
    assert done.returncode == 0, done.stdout[-5000:]
    ranks = [torch.load(out / f"rank{r}.pt", weights_only=False) for r in range(2)]
    return out, ranks, done.stdout


def _reference_arrays():
    x, y, w = sc.arrays(34)
    vx, vy, _ = sc.arrays(11, seed=2)
    model = sc.make_model()
    history = model.fit(
        x,
        y,
        sample_weight=w,
        batch_size=sc.GLOBAL_BATCH,
        epochs=2,
        shuffle=False,
        validation_data=(vx, vy),
        verbose=0,
    )
    return model, history.history, vx, vy


def _assert_weights_close(got, expected):
    assert len(got) == len(expected)
    for g, e in zip(got, expected):
        np.testing.assert_allclose(g, e, atol=1e-5, rtol=0)


def _assert_history_close(got, expected):
    assert sorted(got) == sorted(expected)
    for key in expected:
        np.testing.assert_allclose(got[key], expected[key], atol=1e-5, rtol=1e-5, err_msg=key)


def test_array_fit_matches_one_process(run):
    _, ranks, _ = run
    model, history, vx, vy = _reference_arrays()
    for result in ranks:
        _assert_weights_close(result["arrays"]["weights"], sc.weights(model))
        _assert_history_close(result["arrays"]["history"], history)
    assert ranks[0]["arrays"]["history"] == ranks[1]["arrays"]["history"]
    expected = model.evaluate(vx, vy, batch_size=4, verbose=0, return_dict=True)
    for result in ranks:
        _assert_history_close(result["arrays"]["evaluate"], expected)
        np.testing.assert_allclose(
            result["arrays"]["predict"], model.predict(vx, batch_size=4, verbose=0), atol=1e-5
        )


def test_each_process_trains_on_its_half_of_every_batch(run):
    _, ranks, _ = run
    seen = [r["arrays"]["seen"] for r in ranks]
    assert len(seen[0]) == len(seen[1]) == 34  # 17 samples a process, two epochs
    one_epoch = sorted(seen[0][:17] + seen[1][:17])
    assert one_epoch == list(range(34))
    # Contiguous halves of each global batch of 8: process 0 takes its first 4 samples.
    assert seen[0][:4] == [0, 1, 2, 3] and seen[1][:4] == [4, 5, 6, 7]


def test_files_are_written_once_by_process_zero(run):
    out, ranks, output = run
    assert ranks[0]["saves"] == [
        str(out / "ckpt-1.keras"),
        str(out / "ckpt-2.keras"),
        str(out / "final.keras"),
    ]
    assert ranks[1]["saves"] == []
    with open(out / "log.csv") as f:
        rows = list(csv.DictReader(f))  # appended to: two writers would double the rows
    assert [row["epoch"] for row in rows] == ["0", "1"]
    expected = ranks[0]["arrays"]["history"]["loss"]
    np.testing.assert_allclose([float(r["loss"]) for r in rows], expected, rtol=1e-6)
    assert output.count("Epoch 1/2") == 1  # the progress bar prints on process 0 only
    for result in ranks:
        np.testing.assert_allclose(
            result["restored_predict"],
            result["arrays"]["predict"][: len(result["restored_predict"])],
            atol=1e-6,
        )


def test_generator_with_a_one_sample_last_batch_matches_one_process(run):
    _, ranks, _ = run
    gx, gy, _ = sc.arrays(33, seed=3)
    model = sc.make_model()
    history = model.fit(
        sc.generator(gx, gy, sc.GLOBAL_BATCH, 2), epochs=2, steps_per_epoch=5, verbose=0
    )
    for result in ranks:
        _assert_weights_close(result["generator"]["weights"], sc.weights(model))
        _assert_history_close(result["generator"]["history"], history.history)


@pytest.fixture(scope="module")
def arrays_fit_of_37():
    dx, dy, _ = sc.arrays(37, seed=4)
    model = sc.make_model()
    history = model.fit(dx, dy, batch_size=sc.GLOBAL_BATCH, epochs=2, shuffle=False, verbose=0)
    return sc.weights(model), history.history


@pytest.mark.parametrize("source", ["loader", "dataset"])
def test_dataloader_and_dataset_match_arrays(run, arrays_fit_of_37, source):
    _, ranks, _ = run
    weights, history = arrays_fit_of_37
    for result in ranks:
        _assert_weights_close(result[source]["weights"], weights)
        _assert_history_close(result[source]["history"], history)


def test_shuffled_dataloader_shuffles_alike_on_every_process(run):
    _, ranks, _ = run
    first, second = (r["shuffled"] for r in ranks)
    assert first["history"] == second["history"]
    _assert_weights_close(first["weights"], second["weights"])
    for epoch in range(2):
        # 37 samples in batches of 8: process 0 takes 4 of each full batch and 3 of the last.
        mine = first["seen"][19 * epoch : 19 * (epoch + 1)]
        theirs = second["seen"][18 * epoch : 18 * (epoch + 1)]
        assert sorted(mine + theirs) == list(range(37))
    assert first["seen"][:19] != list(range(19))


def test_two_output_losses_match_one_process(run):
    _, ranks, _ = run
    model = sc.make_two_output_model()
    history = sc.two_output_fit(model)
    assert {"a_loss", "b_loss"} <= set(history)
    for result in ranks:
        _assert_weights_close(result["two_outputs"]["weights"], sc.weights(model))
        _assert_history_close(result["two_outputs"]["history"], history)


def test_an_error_on_one_process_ends_the_job(tmp_path):
    done = _torchrun(str(tmp_path), "fail")
    assert done.returncode != 0
    assert "ValueError: rank 1 could not read batch 2" in done.stdout


def test_a_stuck_process_ends_the_job_at_the_timeout(tmp_path):
    done = _torchrun(str(tmp_path), "hang")  # process 1 sleeps 60 s; the timeout is 3 s
    assert done.returncode != 0
    assert "DistributedError: birnn.distribution: process 0 of 2 failed while averaging " in (
        done.stdout
    )
    assert "collectives wait at most 3s" in done.stdout


def test_one_process_without_torchrun_is_not_distributed():
    model = sc.make_model()
    distribution = birnn.distribution.DataParallel()
    with distribution.scope():
        assert birnn.distribution.distribution() is distribution
        assert birnn.distribution.is_primary()
        x, y, _ = sc.arrays(10)
        model.fit(x, y, epochs=1, verbose=0)
        assert model._distributed is None
    assert birnn.distribution.distribution() is None


def test_bad_arguments():
    with pytest.raises(TypeError, match="devices"):
        birnn.distribution.DataParallel(devices="cpu")
    with pytest.raises(ValueError, match="timeout"):
        birnn.distribution.DataParallel(timeout=0)
    with pytest.raises(TypeError, match="set_distribution"):
        birnn.distribution.set_distribution("data_parallel")
    with pytest.raises(ValueError, match="device_type"):
        birnn.distribution.list_devices("tpu")
