"""Several processes under ``torchrun``: the process group, the embeddings of all ranks gathered before
mining, and rank 0's numbers shared so that every rank decides alike."""

from __future__ import annotations

import os

import torch


def shared_value(value: float, world: int, device: torch.device) -> float:
    """Rank 0's ``value`` on every rank (so all ranks stop training at the same step)."""
    if world == 1:
        return value
    import torch.distributed as dist

    tensor = torch.tensor([value], dtype=torch.float64, device=device)
    dist.broadcast(tensor, 0)
    return float(tensor.item())


def distributed_setup():
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return dist.get_rank(), dist.get_world_size()


def gather(embeddings: torch.Tensor, labels: torch.Tensor, world: int):
    if world == 1:
        return embeddings, labels
    import torch.distributed as dist
    import torch.distributed.nn.functional as dnn

    all_emb = torch.cat(dnn.all_gather(embeddings))
    all_labels = [torch.empty_like(labels) for _ in range(world)]
    dist.all_gather(all_labels, labels)
    return all_emb, torch.cat(all_labels)
