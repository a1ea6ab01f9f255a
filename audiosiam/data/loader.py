"""DataLoader construction: workers, pinned memory where a GPU will consume the batches."""

from __future__ import annotations

import torch

__all__ = ["collate_waveforms", "make_loader"]


def collate_waveforms(batch):
    """Stack equal-length ``(waveform, label)`` examples into ``(waveforms (B, T), labels (B,))``."""
    waves, labels = zip(*batch)
    return torch.stack(waves), torch.as_tensor(labels, dtype=torch.long)


def make_loader(dataset, batch_sampler, *, num_workers: int = 0, device: str | torch.device = "cpu"):
    """A DataLoader over ``batch_sampler`` (PK, pair, ...) with pinned memory when ``device`` is CUDA.

    Workers persist across epochs (no re-fork per epoch); their randomness comes from the dataset's
    per-(epoch, index) seeds, so results do not depend on ``num_workers``.
    """
    pin = torch.device(device).type == "cuda"
    return torch.utils.data.DataLoader(
        dataset,
        batch_sampler=batch_sampler,
        num_workers=num_workers,
        collate_fn=collate_waveforms,
        pin_memory=pin,
        persistent_workers=num_workers > 0,
    )
