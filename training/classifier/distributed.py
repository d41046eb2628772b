"""Data-parallel training under torchrun: one process per GPU (NCCL), or CPU processes on gloo.

torchrun sets RANK, LOCAL_RANK and WORLD_SIZE (and the rendezvous address); `session()` joins the
process group when they say there is more than one process and does nothing otherwise, so `train`
runs the same code alone and under torchrun. What changes with several processes:

- each rank trains on its own shard of every epoch (`train_sampler`: torch's DistributedSampler,
  or for --sampler weighted one weighted draw split between the ranks), so `batch_size` is per
  process and the global batch is batch_size × WORLD_SIZE (the learning rate is not rescaled);
- each rank validates every WORLD_SIZE-th photo and the outputs are gathered (`gather_rows`), so
  every rank computes the same score on the whole fold and takes the same early-stopping decision;
- rank 0 alone logs at INFO, draws progress bars and writes the run folder (checkpoints,
  metrics.csv, TensorBoard, train.log); every rank reads last.pt to resume, so on several nodes the
  run folder must be on storage they share.
"""
from __future__ import annotations

import logging
import math
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import timedelta

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import DistributedSampler, Sampler

from training.config import ConfigError

log = logging.getLogger(__name__)

#: How long a rank waits for the others (a rank busy validating or saving is not a dead one).
TIMEOUT = timedelta(minutes=30)


@dataclass(frozen=True)
class World:
    """This process's place among the training processes (one process: rank 0 of 1)."""

    rank: int = 0
    local_rank: int = 0
    size: int = 1
    backend: str = ""

    @property
    def distributed(self) -> bool:
        return self.size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def from_env() -> World:
    """The world torchrun describes in the environment; a single process without it."""
    try:
        return World(int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0")), int(os.environ.get("WORLD_SIZE", "1")))
    except ValueError as exc:
        raise ConfigError(f"RANK, LOCAL_RANK and WORLD_SIZE must be integers: {exc}") from exc


@contextmanager
def session(device: str) -> Iterator[World]:
    """Join the process group for the block (nccl when training on CUDA, gloo otherwise), with
    rank 0 alone logging at INFO; leave it after a barrier. A no-op for a single process, and
    inside an enclosing session (e.g. one `train --folds all` around the folds' runs)."""
    world = from_env()
    if not world.distributed:
        yield world
        return
    if dist.is_initialized():
        yield replace(world, backend=dist.get_backend())
        return
    cuda = device in ("auto", "cuda") and torch.cuda.is_available()
    if device == "mps":
        raise ConfigError("distributed training runs on CUDA (nccl) or the CPU (gloo), not on MPS")
    backend = "nccl" if cuda else "gloo"
    if cuda:
        torch.cuda.set_device(world.local_rank)
    dist.init_process_group(backend, timeout=TIMEOUT)
    world = replace(world, backend=backend)
    root = logging.getLogger()
    level = root.level
    if not world.is_main:
        root.setLevel(max(level, logging.WARNING))
    log.info("distributed: %d processes on %s", world.size, backend)
    try:
        yield world
        dist.barrier()
    finally:
        root.setLevel(level)
        dist.destroy_process_group()


def place(world: World, device: torch.device) -> torch.device:
    """The device of this rank: its own GPU (LOCAL_RANK) when training on CUDA."""
    if not world.distributed:
        return device
    if device.type == "cuda":
        return torch.device("cuda", world.local_rank)
    if device.type != "cpu":
        raise ConfigError(f"distributed training runs on CUDA or the CPU, not on {device.type}")
    return device


def wrap(world: World, model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """The module the training step calls: DistributedDataParallel over `model` (which stays the
    one whose state_dict is saved, so checkpoints look the same with or without torchrun)."""
    if not world.distributed:
        return model
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)


class ShardedWeightedSampler(Sampler[int]):
    """WeightedRandomSampler split between ranks: every rank draws the same weighted sample (the
    generator is seeded alike on all of them) and keeps every size-th index from its rank on, so
    together they draw len(weights) photos (rounded up to a multiple of the world size) once."""

    def __init__(self, weights: Sequence[float], world: World, generator: torch.Generator) -> None:
        self.weights = torch.as_tensor(weights, dtype=torch.float64)
        self.world = world
        self.generator = generator
        self.per_rank = math.ceil(len(self.weights) / world.size)

    def __len__(self) -> int:
        return self.per_rank

    def __iter__(self) -> Iterator[int]:
        drawn = torch.multinomial(self.weights, self.per_rank * self.world.size, replacement=True, generator=self.generator)
        return iter(drawn[self.world.rank :: self.world.size].tolist())


def train_sampler(world: World, size: int, weights: np.ndarray | None, seed: int, epoch: int, generator: torch.Generator) -> Sampler[int]:
    """This rank's sampler for one epoch of a distributed run (see the module's docstring)."""
    if weights is not None:
        return ShardedWeightedSampler(weights.tolist(), world, generator)
    sampler = DistributedSampler(range(size), num_replicas=world.size, rank=world.rank, shuffle=True, seed=seed)
    sampler.set_epoch(epoch)
    return sampler


def shard(world: World, size: int) -> list[int]:
    """The indices of a `size`-long list this rank handles (every size-th from its rank on)."""
    return list(range(world.rank, size, world.size))


def gather_rows(world: World, rows: dict[str, np.ndarray], size: int) -> dict[str, np.ndarray]:
    """Every rank's `rows` (arrays over its `shard`) put back in the order of the whole list."""
    if not world.distributed:
        return rows
    parts: list[dict[str, np.ndarray] | None] = [None] * world.size
    dist.all_gather_object(parts, rows)
    out = {}
    for key in rows:
        first = parts[0][key]  # type: ignore[index]
        whole = np.empty((size, *first.shape[1:]), dtype=first.dtype)
        for rank, part in enumerate(parts):
            whole[rank::world.size] = part[key]  # type: ignore[index]
        out[key] = whole
    return out


def all_sum(world: World, values: Sequence[float], device: torch.device) -> list[float]:
    """`values` summed over the ranks (every rank gets the sums)."""
    if not world.distributed:
        return list(values)
    tensor = torch.tensor(list(values), dtype=torch.float64, device=device)
    dist.all_reduce(tensor)
    return tensor.tolist()
