"""Fixtures for the fused-kernel tests: birnn's native kernels on or off."""

import pytest
import torch

from birnn.ops import native_rnn

NEEDS_NATIVE = "needs birnn's native kernels (a C++ compiler)"


@pytest.fixture
def native_off():
    """PyTorch's kernels only for one test (packing, segmenting, worker threads)."""
    native_rnn.set_enabled(False)
    yield
    native_rnn.set_enabled(True)


@pytest.fixture
def needs_native():
    """Skips (an allowed reason) where the native kernels cannot be built; CI always has them."""
    if not native_rnn.enabled():
        pytest.skip(NEEDS_NATIVE)


@pytest.fixture(params=[True, False], ids=["native", "torch"])
def native(request):
    """Runs a test with birnn's native kernels allowed, then with PyTorch's kernels only.

    The value is whether the native kernels run.
    """
    if request.param and not native_rnn.enabled():
        pytest.skip(NEEDS_NATIVE)
    native_rnn.set_enabled(request.param)
    yield request.param
    native_rnn.set_enabled(True)


@pytest.fixture
def few_threads():
    """At most two intra-op threads for one test, so that a bidirectional pair takes the one
    concurrent native call (`fused_rnn` gives each direction a worker from four threads up)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(min(threads, 2))
    yield
    torch.set_num_threads(threads)
