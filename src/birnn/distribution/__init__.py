"""Keras's distribution API on `torch.distributed`: data-parallel `fit` across processes.

Start one process per device with `torchrun` (one machine or several), call
`set_distribution(DataParallel())` once, then build, compile and fit as usual:

    torchrun --nproc_per_node=2 train.py

- `DataParallel`: the distribution (one model replica per process).
- `set_distribution`, `distribution`: set and read the current one.
- `list_devices`: this machine's devices.
- `is_primary`: whether this process is the one that prints and writes files.
"""

from birnn.distribution.data_parallel import (
    DataParallel,
    distribution,
    is_primary,
    list_devices,
    set_distribution,
)
from birnn.distribution.runtime import DistributedError

__all__ = [
    "DataParallel",
    "DistributedError",
    "distribution",
    "is_primary",
    "list_devices",
    "set_distribution",
]
