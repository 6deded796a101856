"""Data-parallel training over processes (torch.distributed), or one process alone.

Launched by ``torchrun --nproc_per_node=N``, every process trains the same model on its
own shard of the data with its own seeds; gradients are averaged over the processes
before each optimiser step, so the parameters stay identical everywhere. Only rank 0
writes files.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor
from torch import distributed as dist

CPU = torch.device("cpu")


@dataclass(frozen=True)
class Ranks:
    """This process's place among ``world`` processes, and the device it computes on."""

    rank: int = 0
    world: int = 1
    device: torch.device = CPU

    @property
    def is_main(self) -> bool:
        """Rank 0: the one process that writes files and shows progress."""
        return self.rank == 0

    def mean(self, value: Tensor) -> Tensor:
        """The average of ``value`` over the processes (itself when alone)."""
        if self.world == 1:
            return value
        total = value.detach().clone()
        dist.all_reduce(total)
        return total / self.world

    def average(self, tensors: list[Tensor]) -> list[Tensor]:
        """The average of each tensor over the processes (one all-reduce for all of them;
        the tensors themselves when alone)."""
        if self.world == 1 or not tensors:
            return tensors
        flat = torch.cat([t.detach().reshape(-1) for t in tensors])
        dist.all_reduce(flat)
        flat /= self.world
        return [
            part.view_as(t)
            for part, t in zip(flat.split([t.numel() for t in tensors]), tensors, strict=True)
        ]

    def broadcast(self, tensors: list[Tensor]) -> None:
        """Make every process hold rank 0's values of ``tensors`` (in place)."""
        if self.world == 1:
            return
        for tensor in tensors:
            dist.broadcast(tensor, src=0)

    def broadcast_object(self, obj: Any) -> Any:
        """Rank 0's ``obj`` on every process (``obj`` itself when alone)."""
        if self.world == 1:
            return obj
        holder = [obj if self.is_main else None]
        dist.broadcast_object_list(holder, src=0)
        return holder[0]

    def gather(self, obj: Any) -> list[Any]:
        """Every process's ``obj``, in rank order (a list of one when alone)."""
        if self.world == 1:
            return [obj]
        gathered: list[Any] = [None] * self.world
        dist.all_gather_object(gathered, obj)
        return gathered


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    """``auto``: CUDA (this process's GPU) when available, else the CPU."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":
        if not torch.cuda.is_available():
            raise ValueError("device 'cuda' was asked for, but CUDA is not available")
        return torch.device("cuda", local_rank)
    return torch.device("cpu")


def init_ranks(device: str) -> Ranks:
    """This process's Ranks: from an initialised process group, or from the torchrun
    environment (WORLD_SIZE > 1: RANK, LOCAL_RANK, MASTER_ADDR, MASTER_PORT), which
    it initialises (nccl on CUDA, gloo on the CPU); otherwise a single process."""
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if not dist.is_initialized() and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        resolved = resolve_device(device, local_rank)
        if resolved.type == "cuda":
            torch.cuda.set_device(resolved)
        dist.init_process_group("nccl" if resolved.type == "cuda" else "gloo")
    if not dist.is_initialized():
        return Ranks(device=resolve_device(device))
    resolved = resolve_device(device, local_rank)
    if resolved.type == "cuda":
        torch.cuda.set_device(resolved)
    return Ranks(rank=dist.get_rank(), world=dist.get_world_size(), device=resolved)
