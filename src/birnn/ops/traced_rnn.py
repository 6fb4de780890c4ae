"""PyTorch's fused LSTM / GRU kernel call, written as plain tensor ops that `torch.compile` traces.

`kernel` takes exactly what `torch._VF.lstm` / `torch._VF.gru` take in
`birnn.ops.fused_rnn` (PyTorch's flat weights and gate order, one layer, one
or two directions) and returns the same `(outputs, final_states)`. The time
loop is a Python loop, so TorchDynamo unrolls it: one graph holds every step,
inductor fuses each step's gate arithmetic, and AOTAutograd derives a single
backward graph. `fused_rnn` uses it where birnn's native kernels cannot join
the graph (`birnn.ops.native_graph`: CUDA, half precision, autocast, kernels
off), and in inference on short sequences, where inductor's fused loops beat
the kernel call. For long sequences the unrolled graph takes too long to
compile (`MAX_TRACED_STEPS`): there the native kernels, or else the opaque
kernel call outside the graph.

Both directions run in one batched matrix product per step (`torch.bmm` over a
leading direction axis), which halves the operations in the graph.
"""

from __future__ import annotations

import torch

__all__ = ["MAX_TRACED_STEPS", "kernel"]

#: Longest sequence that runs unrolled when `torch.compile` traces a fused RNN call
#: (and, with the native kernels usable, the longest inference sequence that does).
#: Compile time grows with the number of unrolled steps (each adds its operations to
#: the forward and backward graphs), while the win of tracing — no per-call kernel
#: overhead, fused gate arithmetic — shrinks as the arithmetic of a long sequence
#: dominates. Measured on a 2-core CPU (`docs/jit_compile.md`).
MAX_TRACED_STEPS = 10


def kernel(
    kind: str,
    inputs: torch.Tensor,
    states: list[torch.Tensor],
    weights: list[torch.Tensor],
    has_biases: bool,
    bidirectional: bool,
    batch_first: bool = True,
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """`torch._VF.lstm`/`gru` (one layer) as traceable ops: `(outputs, final_states)`.

    Args:
        kind: `"lstm"` (gates `i, f, g, o`) or `"gru"` (gates `r, z, n`).
        inputs: `(batch, time, features)`, or `(time, batch, features)` when
            `batch_first=False`.
        states: `[h]` (GRU) or `[h, c]` (LSTM), each `(directions, batch, units)`.
        weights: PyTorch's flat weights, per direction `[w_ih, w_hh(, b_ih, b_hh)]`.
        has_biases: Whether `weights` hold the biases.
        bidirectional: Two directions (the second reads the sequence reversed).
        batch_first: The layout of `inputs` and of the returned outputs.

    Examples:

    >>> import torch
    >>> w = [torch.randn(6, 3), torch.randn(6, 2), torch.randn(6), torch.randn(6)]
    >>> x, h = torch.randn(4, 5, 3), [torch.zeros(1, 4, 2)]
    >>> out, (h_n,) = kernel("gru", x, h, w, True, False)
    >>> ref, ref_h = torch._VF.gru(x, h[0], w, True, 1, 0.0, False, False, True)
    >>> torch.allclose(out, ref, atol=1e-6), torch.allclose(h_n, ref_h, atol=1e-6)
    (True, True)
    """
    x = inputs if batch_first else inputs.transpose(0, 1)
    per = 4 if has_biases else 2
    directions = 2 if bidirectional else 1
    groups = [weights[d * per : (d + 1) * per] for d in range(directions)]
    w_ih = torch.stack([g[0] for g in groups]).transpose(1, 2)  # (D, features, gates*units)
    w_hh = torch.stack([g[1] for g in groups]).transpose(1, 2)  # (D, units, gates*units)
    batch, steps, features = x.shape
    xs = torch.stack([x, x.flip(1)]) if bidirectional else x.unsqueeze(0)
    projected = torch.bmm(xs.reshape(directions, batch * steps, features), w_ih)
    projected = projected.reshape(directions, batch, steps, -1)
    b_hh = None
    if has_biases:
        b_ih = torch.stack([g[2] for g in groups]).unsqueeze(1).unsqueeze(1)
        b_hh = torch.stack([g[3] for g in groups]).unsqueeze(1)  # (D, 1, gates*units)
        if kind == "lstm":
            projected = projected + (b_ih + b_hh.unsqueeze(1))
            b_hh = None
        else:
            projected = projected + b_ih
    h = states[0]
    c = states[1] if kind == "lstm" else None
    outputs = []
    for t in range(steps):
        recurrent = torch.bmm(h, w_hh)
        if b_hh is not None:
            recurrent = recurrent + b_hh
        step_in = projected[:, :, t]
        if kind == "lstm":
            assert c is not None
            i, f, g, o = (step_in + recurrent).chunk(4, dim=-1)
            c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
            h = torch.sigmoid(o) * torch.tanh(c)
        else:
            x_r, x_z, x_n = step_in.chunk(3, dim=-1)
            h_r, h_z, h_n = recurrent.chunk(3, dim=-1)
            r = torch.sigmoid(x_r + h_r)
            z = torch.sigmoid(x_z + h_z)
            n = torch.tanh(x_n + r * h_n)
            h = n + z * (h - n)
        outputs.append(h)
    sequence = torch.stack(outputs, dim=2)  # (D, batch, time, units)
    if bidirectional:
        out = torch.cat([sequence[0], sequence[1].flip(1)], dim=-1)
    else:
        out = sequence[0]
    final = [h] if c is None else [h, c]
    return (out if batch_first else out.transpose(0, 1)), final
