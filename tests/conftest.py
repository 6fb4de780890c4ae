"""Shared test set-up: Keras (the oracle) runs on its torch backend."""

import os
import random

os.environ.setdefault("KERAS_BACKEND", "torch")

import numpy as np
import pytest
import torch

# The run fails on any skip outside the allow-list (hooks picked up by name).
from tests._skip_policy import (  # noqa: F401
    pytest_collectreport,
    pytest_runtest_logreport,
    pytest_sessionfinish,
    pytest_terminal_summary,
)

if os.environ.get("PYTEST_XDIST_WORKER"):
    # `make test` runs two workers on two cores: more threads per worker than cores
    # makes tiny parity cases hundreds of times slower through oversubscription.
    torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _seed_everything():
    """Every test starts from the same random state, whichever tests ran before it.

    Python's `random` too: Keras draws the seed of an unseeded initializer from it, so
    the oracle's initial weights would otherwise depend on the tests before (and a
    comparison after Adam steps, which magnify float noise in tiny gradients, could
    fail in one order and pass in another).
    """
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)
    yield
