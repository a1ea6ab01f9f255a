"""DataLoader construction: workers, pinned memory where a GPU will consume the batches."""

from __future__ import annotations

import torch


def collate_waveforms(batch):
    """Stack equal-length ``(waveform, label)`` examples into ``(waveforms (B, T), labels (B,))``.

    Args:
        batch (Sequence[tuple[Tensor, int]]): ``B`` examples, each a ``(T,)`` waveform and its integer label.

    Returns:
        tuple[Tensor, Tensor]: the waveforms ``(B, T)`` and the labels ``(B,)`` as ``torch.long``.
    """
    waves, labels = zip(*batch)
    return torch.stack(waves), torch.as_tensor(labels, dtype=torch.long)


def make_loader(dataset, batch_sampler, *, num_workers: int = 0, device: str | torch.device = "cpu"):
    """A DataLoader over ``batch_sampler`` (PK, pair, ...) with pinned memory when ``device`` is CUDA.

    Batches are collated by ``collate_waveforms()`` into ``(waveforms (B, T), labels (B,))``.

    Args:
        dataset (Dataset): map-style dataset of ``(waveform, label)`` examples, e.g. an
            :class:`~audiosiam.data.AudioClipDataset`.
        batch_sampler (Sampler[list[int]]): yields the indices of one batch at a time (a
            :class:`~audiosiam.data.PKSampler`, :class:`~audiosiam.data.PairSampler`, ...).
        num_workers (int, optional): loader worker processes; ``0`` loads in the calling process. Workers
            persist across epochs (no re-fork per epoch); their randomness comes from the dataset's
            per-(epoch, index) seeds, so results do not depend on ``num_workers``. Default: ``0``.
        device (str or torch.device, optional): where the batches will be consumed; memory is pinned only
            when it is CUDA. Default: ``"cpu"``.

    Returns:
        DataLoader: the loader.
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
