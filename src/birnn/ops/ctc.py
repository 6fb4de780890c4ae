"""Connectionist Temporal Classification: the loss and greedy / beam-search decoding.

Both follow `keras.ops.ctc_loss` and `keras.ops.ctc_decode` (Keras 3.15.1):

- `ctc_loss` log-softmaxes `output` `(batch, time, classes)` and runs
  `torch.nn.functional.ctc_loss` with `mask_index` as the blank; impossible
  alignments give `inf`, as in Keras.
- `ctc_decode` returns `(decoded, log_probabilities)`: `decoded` is int32
  `(top_paths, batch, time)` padded with `-1` (`top_paths` is 1 for greedy);
  greedy scores are `-sum` over the valid steps of each step's largest input
  (the inputs as given, not normalised) with shape `(batch, 1)`; beam-search
  scores are the log probabilities of the decoded labellings under the
  log-softmaxed inputs, `(batch, top_paths)`, best first. Where two labellings
  score exactly the same, the longer one ranks first; Keras breaks some such
  ties differently (only exactly equal scores, e.g. from integer logits), and
  gives a zero-length sequence the labelling of its first step where birnn
  gives the empty labelling with log probability 0.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["ctc_loss", "ctc_decode"]


def _tensor(x: Any) -> torch.Tensor:
    return x if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x))


def ctc_loss(
    target: Any, output: Any, target_length: Any, output_length: Any, mask_index: int = 0
) -> torch.Tensor:
    """Per-sample CTC negative log-likelihood.

    Args:
        target: Integer labels `(batch, max_label_length)`.
        output: Unnormalised scores `(batch, time, classes)` (log-softmaxed here).
        target_length: `(batch,)` number of labels of each sample.
        output_length: `(batch,)` number of valid steps of each sample.
        mask_index: The blank class.

    Returns:
        `(batch,)` losses.

    Examples:

    >>> import torch
    >>> loss = ctc_loss(torch.tensor([[1]]), torch.zeros(1, 2, 2), torch.tensor([1]),
    ...                 torch.tensor([2]))
    >>> round(float(loss[0]), 4)  # 3 of the 4 equally likely paths read "1"
    0.2877
    """
    output = _tensor(output)
    if not output.is_floating_point():
        output = output.float()
    log_probs = F.log_softmax(output, dim=-1).transpose(0, 1)
    target = _tensor(target).to(device=output.device, dtype=torch.long)
    target_length = _tensor(target_length).to(device=output.device, dtype=torch.long)
    output_length = _tensor(output_length).to(device=output.device, dtype=torch.long)
    return F.ctc_loss(
        log_probs,
        target,
        output_length,
        target_length,
        blank=int(mask_index),
        reduction="none",
    )


def _greedy(
    inputs: torch.Tensor, lengths: torch.Tensor, merge_repeated: bool, blank: int
) -> tuple[torch.Tensor, torch.Tensor]:
    batch, steps, _ = inputs.shape
    best, labels = inputs.max(dim=-1)
    valid = torch.arange(steps, device=inputs.device)[None, :] < lengths[:, None]
    scores = -torch.where(valid, best, torch.zeros_like(best)).sum(dim=1, keepdim=True)
    keep = valid & (labels != blank)
    if merge_repeated:
        repeated = torch.zeros_like(keep)
        repeated[:, 1:] = labels[:, 1:] == labels[:, :-1]
        keep = keep & ~repeated
    # Move the kept labels to the front of each row, in order, and pad with -1.
    order = torch.argsort((~keep).to(torch.int8), dim=1, stable=True)
    packed = torch.gather(labels, 1, order)
    kept = torch.gather(keep, 1, order)
    decoded = torch.where(kept, packed, torch.full_like(packed, -1)).to(torch.int32)
    return decoded[None], scores


def _log_add(a: float, b: float) -> float:
    if a == -math.inf:
        return b
    if b == -math.inf:
        return a
    top = max(a, b)
    return top + math.log1p(math.exp(-abs(a - b)))


def _beam_search_one(
    log_probs: np.ndarray, beam_width: int, top_paths: int, blank: int
) -> list[tuple[tuple[int, ...], float]]:
    """Prefix beam search over `(steps, classes)` log probabilities of one sequence."""
    beams: dict[tuple[int, ...], tuple[float, float]] = {(): (0.0, -math.inf)}
    classes = log_probs.shape[1]
    for step in log_probs:
        # labelling -> [log p(ending in a blank), log p(ending in its last label)]
        grown: dict[tuple[int, ...], list[float]] = {}
        for prefix, (p_blank, p_label) in beams.items():
            total = _log_add(p_blank, p_label)
            here = grown.setdefault(prefix, [-math.inf, -math.inf])
            here[0] = _log_add(here[0], total + float(step[blank]))
            last = prefix[-1] if prefix else None
            for c in range(classes):
                if c == blank:
                    continue
                p = float(step[c])
                extended = grown.setdefault((*prefix, c), [-math.inf, -math.inf])
                if c == last:
                    # A repeat extends the labelling only across a blank; without one
                    # it stays on the same labelling.
                    extended[1] = _log_add(extended[1], p_blank + p)
                    here[1] = _log_add(here[1], p_label + p)
                else:
                    extended[1] = _log_add(extended[1], total + p)
        ranked = sorted(grown.items(), key=lambda kv: (-_log_add(*kv[1]), -len(kv[0])))
        beams = {prefix: (pb, pl) for prefix, (pb, pl) in ranked[:beam_width]}
    final = sorted(beams.items(), key=lambda kv: (-_log_add(*kv[1]), -len(kv[0])))
    return [(prefix, _log_add(*scores)) for prefix, scores in final[:top_paths]]


def _beam_search(
    inputs: torch.Tensor, lengths: torch.Tensor, beam_width: int, top_paths: int, blank: int
) -> tuple[torch.Tensor, torch.Tensor]:
    batch, steps, _ = inputs.shape
    log_probs = F.log_softmax(inputs.detach().double(), dim=-1).cpu().numpy()
    decoded = np.full((top_paths, batch, steps), -1, dtype=np.int32)
    scores = np.full((batch, top_paths), -np.inf, dtype=np.float64)
    for b in range(batch):
        length = int(lengths[b])
        found = _beam_search_one(log_probs[b, :length], beam_width, top_paths, blank)
        for k, (prefix, score) in enumerate(found):
            decoded[k, b, : len(prefix)] = prefix
            scores[b, k] = score
    device = inputs.device
    return (
        torch.from_numpy(decoded).to(device),
        torch.from_numpy(scores).to(device=device, dtype=inputs.dtype),
    )


def ctc_decode(
    inputs: Any,
    sequence_lengths: Any,
    strategy: str = "greedy",
    beam_width: int = 100,
    top_paths: int = 1,
    merge_repeated: bool = True,
    mask_index: int | None = 0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Decodes the output of a CTC model (Keras's `ops.ctc_decode`).

    Args:
        inputs: Scores `(batch, time, classes)`: logits, or probabilities from a
            softmax (greedy decoding only compares them; beam search
            log-softmaxes them, as Keras does).
        sequence_lengths: `(batch,)` number of valid steps of each sample.
        strategy: `"greedy"` or `"beam_search"`.
        beam_width: Number of labellings kept at each step of the beam search.
        top_paths: Number of labellings returned by the beam search.
        merge_repeated: Whether greedy decoding merges repeated labels (beam
            search always reads a repeat without a blank between as one label).
        mask_index: The blank class; `None` means the last class.

    Returns:
        `(decoded, log_probabilities)`: int32 `(top_paths, batch, time)` labels
        padded with `-1`, and the scores (`(batch, 1)` greedy, `(batch, top_paths)`
        beam search).

    Raises:
        ValueError: for an unknown `strategy`, bad `beam_width`/`top_paths`, or
            inputs that are not `(batch, time, classes)`.

    Examples:

    >>> import torch
    >>> probs = torch.tensor([[[0.1, 0.9], [0.2, 0.8], [0.9, 0.1], [0.3, 0.7]]])
    >>> decoded, scores = ctc_decode(probs, torch.tensor([4]))
    >>> decoded
    tensor([[[ 1,  1, -1, -1]]], dtype=torch.int32)
    """
    inputs = _tensor(inputs)
    if inputs.ndim != 3:
        raise ValueError(
            "ctc_decode: argument `inputs` must have shape (batch, time, classes). "
            f"Received shape {tuple(inputs.shape)}"
        )
    if not inputs.is_floating_point():
        inputs = inputs.float()
    lengths = _tensor(sequence_lengths).to(device=inputs.device, dtype=torch.long).reshape(-1)
    if lengths.shape[0] != inputs.shape[0]:
        raise ValueError(
            "ctc_decode: argument `sequence_lengths` must have one length per sample: "
            f"expected shape ({inputs.shape[0]},), received {tuple(lengths.shape)}"
        )
    classes = inputs.shape[-1]
    blank = classes - 1 if mask_index is None else int(mask_index)
    if not -classes <= blank < classes:
        raise ValueError(
            f"ctc_decode: argument `mask_index` must be a class index below {classes}. "
            f"Received: mask_index={mask_index!r}"
        )
    blank %= classes
    if strategy == "greedy":
        return _greedy(inputs, lengths, bool(merge_repeated), blank)
    if strategy == "beam_search":
        for name, value in (("beam_width", beam_width), ("top_paths", top_paths)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(
                    f"ctc_decode: argument `{name}` must be a positive integer. "
                    f"Received: {name}={value!r}"
                )
        if top_paths > beam_width:
            raise ValueError(
                "ctc_decode: argument `top_paths` cannot exceed `beam_width`. "
                f"Received: top_paths={top_paths}, beam_width={beam_width}"
            )
        return _beam_search(inputs, lengths, beam_width, top_paths, blank)
    raise ValueError(
        "ctc_decode: argument `strategy` must be 'greedy' or 'beam_search'. "
        f"Received: strategy={strategy!r}"
    )
