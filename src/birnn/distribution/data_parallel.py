"""Keras's distribution API (`DataParallel`, `set_distribution`...) on `torch.distributed`.

One process per device, as `torchrun` starts them: each process holds a full
replica of the model, takes its slice of every global batch, and the gradients
are averaged across processes before each optimizer step.
"""

from __future__ import annotations

import atexit
import contextlib
import datetime
import os
from collections.abc import Iterator

import torch
import torch.distributed as dist

DEFAULT_TIMEOUT = 600.0


def list_devices(device_type: str | None = None) -> list[str]:
    """The devices of this machine, as Keras names them (`"cuda:0"`, `"cpu:0"`).

    Args:
        device_type: `"cpu"`, `"gpu"`/`"cuda"`, or `None` for the accelerators when
            there are any, else the CPU.

    Returns:
        A list of device names.

    Examples:

    >>> "cpu:0" in list_devices("cpu")
    True
    """
    kind = (device_type or "").lower()
    if kind not in ("", "cpu", "gpu", "cuda"):
        raise ValueError(
            f"list_devices: `device_type` must be 'cpu', 'gpu', 'cuda' or None. "
            f"Received: {device_type!r}"
        )
    if kind in ("", "gpu", "cuda") and torch.cuda.is_available():
        return [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    if kind in ("gpu", "cuda"):
        return []
    return ["cpu:0"]


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"The environment variable {name}={value!r} is not an integer.") from None


class DataParallel:
    """Data parallelism across processes: a full model replica on each device.

    Start one process per device with `torchrun` and call
    `set_distribution(DataParallel())` once at the top of the script, before
    building the model; `fit`, `evaluate` and `predict` then split each global
    batch (`batch_size` samples) across the processes, average the gradients, and
    report metrics over the whole batch on every process. Run as a plain script
    (no `torchrun`), it is a one-process distribution and changes nothing.

    Args:
        devices: The devices of this machine the processes use, one per local
            process (`devices[LOCAL_RANK]` is this process's), as names like
            `"cuda:0"` or `"cpu"`. Default: `cuda:<LOCAL_RANK>` when CUDA is
            available, else the CPU.
        timeout: Seconds a collective operation (gradient averaging, metric
            reduction, the barrier after saving) waits for the other processes
            before raising, so that a failed or stuck process ends the job
            instead of hanging it.
        backend: The `torch.distributed` backend; default `"nccl"` on CUDA
            devices, `"gloo"` on the CPU.

    Examples:

    >>> distribution = DataParallel(devices=["cpu"])
    >>> distribution.num_processes, distribution.process_id, distribution.device
    (1, 0, device(type='cpu'))
    """

    def __init__(
        self,
        devices: list[str] | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        backend: str | None = None,
    ) -> None:
        if devices is not None and (
            isinstance(devices, str) or not all(isinstance(d, str) for d in devices)
        ):
            raise TypeError(
                f"DataParallel: `devices` must be a list of device names such as "
                f"['cuda:0', 'cuda:1']. Received: {devices!r}"
            )
        if not (isinstance(timeout, (int, float)) and timeout > 0):
            raise ValueError(
                f"DataParallel: `timeout` must be a positive number of seconds. "
                f"Received: {timeout!r}"
            )
        self.devices = list(devices) if devices is not None else None
        self.timeout = float(timeout)
        self.local_rank = _env_int("LOCAL_RANK", 0)
        if devices is not None and not 0 <= self.local_rank < len(devices):
            raise ValueError(
                f"DataParallel: this process has LOCAL_RANK={self.local_rank} but only "
                f"{len(devices)} device(s) were given: {devices}."
            )
        if devices is not None:
            self.device = torch.device(devices[self.local_rank])
        elif torch.cuda.is_available():
            self.device = torch.device("cuda", self.local_rank % torch.cuda.device_count())
        else:
            self.device = torch.device("cpu")
        self.backend = backend or ("nccl" if self.device.type == "cuda" else "gloo")
        self.batch_dim_name = "batch"

    @property
    def num_processes(self) -> int:
        """How many processes share each global batch (`WORLD_SIZE`)."""
        if dist.is_available() and dist.is_initialized():
            return dist.get_world_size()
        return _env_int("WORLD_SIZE", 1)

    @property
    def process_id(self) -> int:
        """This process's index (`RANK`); 0 is the one that prints and writes files."""
        if dist.is_available() and dist.is_initialized():
            return dist.get_rank()
        return _env_int("RANK", 0)

    def initialize(self) -> None:
        """Joins the process group described by torchrun's environment variables.

        A no-op for one process or when the group already exists.
        """
        if self.num_processes <= 1 or dist.is_initialized():
            return
        missing = [v for v in ("MASTER_ADDR", "MASTER_PORT", "RANK") if v not in os.environ]
        if missing:
            raise RuntimeError(
                f"DataParallel: WORLD_SIZE={self.num_processes} but {missing} are not set; "
                "start the script with `torchrun --nproc_per_node=N script.py`."
            )
        if self.device.type == "cuda":
            torch.cuda.set_device(self.device)
        dist.init_process_group(
            backend=self.backend,
            timeout=datetime.timedelta(seconds=self.timeout),
        )
        atexit.register(_destroy_group)

    @contextlib.contextmanager
    def scope(self) -> Iterator[DataParallel]:
        """Makes this the current distribution inside a `with` block."""
        previous = _current
        set_distribution(self)
        try:
            yield self
        finally:
            set_distribution(previous)

    def __repr__(self) -> str:
        return (
            f"<DataParallel device={self.device} process {self.process_id} of "
            f"{self.num_processes}>"
        )


def _destroy_group() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


_current: DataParallel | None = None


def set_distribution(value: DataParallel | None) -> None:
    """Sets the distribution `fit`/`evaluate`/`predict` use (`None` for none).

    Joins the process group (from torchrun's environment) the first time.

    Args:
        value: A `DataParallel`, or `None`.

    Raises:
        TypeError: for anything else.
    """
    global _current
    if value is not None and not isinstance(value, DataParallel):
        raise TypeError(
            f"set_distribution: expected a `DataParallel` or None. Received: {value!r}"
        )
    if value is not None:
        value.initialize()
    _current = value


def distribution() -> DataParallel | None:
    """The distribution set by `set_distribution` (`None` when there is none)."""
    return _current


def active() -> DataParallel | None:
    """The current distribution when it spans more than one process, else `None`."""
    current = _current
    if current is None or not dist.is_initialized() or dist.get_world_size() <= 1:
        return None
    return current


def is_primary() -> bool:
    """Whether this process prints and writes files (rank 0, or no distribution).

    Examples:

    >>> is_primary()
    True
    """
    current = active()
    return current is None or dist.get_rank() == 0
