"""birnn models as plain PyTorch modules: `torch.compile` and `DistributedDataParallel`."""

from __future__ import annotations

import pytest
import torch
import torch.distributed as dist

import birnn
from birnn import layers


def _model(seed: int = 0) -> birnn.Sequential:
    torch.manual_seed(seed)
    return birnn.Sequential(
        [
            birnn.Input((5, 3)),
            layers.Bidirectional(layers.LSTM(4, return_sequences=True)),
            layers.Bidirectional(layers.GRU(4)),
            layers.Dense(2),
        ]
    )


def _grads(model: torch.nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
    model.zero_grad(set_to_none=True)
    model(x).square().sum().backward()
    return [p.grad.clone() for p in model.parameters()]


@pytest.mark.parametrize("masked", [False, True])
def test_torch_compile_matches_eager_outputs_and_gradients(masked):
    model = _model()
    if masked:
        model = birnn.Sequential([birnn.Input((5, 3)), layers.Masking(0.0), *model.layers])
    x = torch.randn(6, 5, 3)
    x[1, 3:] = 0.0
    compiled = torch.compile(model, backend="aot_eager")
    torch.testing.assert_close(compiled(x), model(x), atol=1e-6, rtol=1e-6)
    for got, expected in zip(_grads(compiled, x), _grads(model, x)):
        torch.testing.assert_close(got, expected, atol=1e-6, rtol=1e-6)


def test_distributed_data_parallel_gradients(tmp_path):
    dist.init_process_group(
        "gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1
    )
    try:
        model, reference = _model(), _model(seed=1)
        reference.set_weights(model.get_weights())
        wrapped = torch.nn.parallel.DistributedDataParallel(model)
        x = torch.randn(6, 5, 3)
        for got, expected in zip(_grads(wrapped, x), _grads(reference, x)):
            torch.testing.assert_close(got, expected, atol=1e-6, rtol=1e-6)
    finally:
        dist.destroy_process_group()
