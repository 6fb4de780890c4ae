"""Run by `torchrun --nproc_per_node=2` from test_data_parallel.py.

Usage: python _worker.py OUT_DIR [fail|hang]. Each process writes OUT_DIR/rank<r>.pt with
what it saw; with `fail`, process 1 raises in the middle of `fit`; with `hang`, it stops
responding there (the collectives' 3-second timeout must end the job).
"""

from __future__ import annotations

import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(__file__))))

import birnn
from birnn import distribution
from birnn.saving import keras_file
from tests.distribution import _scenarios as sc


def main(out: str, mode: str) -> None:
    torch.set_num_threads(1)
    distribution.set_distribution(distribution.DataParallel(timeout=3 if mode == "hang" else 30))
    rank = distribution.distribution().process_id
    result: dict = {"rank": rank}

    if mode in ("fail", "hang"):
        x, y, _ = sc.arrays(32)

        def batches():
            for step in range(4):
                if rank == 1 and step == 2:
                    if mode == "hang":
                        time.sleep(60)
                    raise ValueError("rank 1 could not read batch 2")
                yield x[step * 8 : step * 8 + 8], y[step * 8 : step * 8 + 8]

        sc.make_model().fit(batches(), epochs=1, verbose=0)
        return

    saves: list = []
    real_save = keras_file.save_model

    def counting_save(*args, **kwargs):
        saves.append(args[1])
        real_save(*args, **kwargs)

    keras_file.save_model = counting_save

    # Arrays with sample weights, validation, CSV log and checkpoints.
    x, y, w = sc.arrays(34)
    vx, vy, _ = sc.arrays(11, seed=2)
    model = sc.make_model()
    seen: list = []
    train_step = model.train_step

    def counting_step(bx, by, bsw=None):
        seen.extend(bx[:, 0, 0].round().long().tolist())
        return train_step(bx, by, bsw)

    model.train_step = counting_step
    history = model.fit(
        x,
        y,
        sample_weight=w,
        batch_size=sc.GLOBAL_BATCH,
        epochs=2,
        shuffle=False,
        validation_data=(vx, vy),
        callbacks=[
            birnn.callbacks.CSVLogger(os.path.join(out, "log.csv"), append=True),
            birnn.callbacks.ModelCheckpoint(os.path.join(out, "ckpt-{epoch}.keras")),
        ],
        verbose=2,
    )
    result["arrays"] = {
        "history": history.history,
        "weights": sc.weights(model),
        "seen": seen,
        "evaluate": model.evaluate(vx, vy, batch_size=4, verbose=0, return_dict=True),
        "predict": model.predict(vx, batch_size=4, verbose=0),
    }
    model.save(os.path.join(out, "final.keras"))
    result["saves"] = list(saves)
    restored = birnn.saving.load_model(os.path.join(out, "final.keras"))
    result["restored_predict"] = restored.predict(vx, verbose=0)

    # A generator whose last batch has one sample (process 1's slice of it is empty).
    gx, gy, _ = sc.arrays(33, seed=3)
    model = sc.make_model()
    history = model.fit(
        sc.generator(gx, gy, sc.GLOBAL_BATCH, 2), epochs=2, steps_per_epoch=5, verbose=0
    )
    result["generator"] = {"history": history.history, "weights": sc.weights(model)}

    # A DataLoader, unshuffled (compared with arrays) and shuffled (every sample once).
    dx, dy, _ = sc.arrays(37, seed=4)
    model = sc.make_model()
    history = model.fit(sc.loader(dx, dy, shuffle=False), epochs=2, verbose=0)
    result["loader"] = {"history": history.history, "weights": sc.weights(model)}
    model = sc.make_model()
    dataset = sc.loader(dx, dy, shuffle=False).dataset
    history = model.fit(dataset, batch_size=sc.GLOBAL_BATCH, shuffle=False, epochs=2, verbose=0)
    result["dataset"] = {"history": history.history, "weights": sc.weights(model)}
    model = sc.make_model()
    seen = []
    train_step = model.train_step
    model.train_step = counting_step
    history = model.fit(sc.loader(dx, dy, shuffle=True), epochs=2, verbose=0)
    result["shuffled"] = {"history": history.history, "weights": sc.weights(model), "seen": seen}

    # Two outputs: the per-output loss trackers count each global batch once.
    model = sc.make_two_output_model()
    result["two_outputs"] = {"history": sc.two_output_fit(model), "weights": sc.weights(model)}

    torch.save(result, os.path.join(out, f"rank{rank}.pt"))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else "run")
