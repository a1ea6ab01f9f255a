"""From a model and clips to the embeddings every metric here takes (unit length, integer labels)."""

from __future__ import annotations

import torch

from ..errors import ParameterError


def as_unit_rows(embeddings) -> torch.Tensor:
    return torch.nn.functional.normalize(torch.as_tensor(embeddings, dtype=torch.float32), dim=1)


def progress_bar(iterable, progress: bool, desc: str, unit: str, total: int | None = None):
    """``iterable``, under a progress bar that goes away when done if ``progress``."""
    if not progress:
        return iterable
    from tqdm.auto import tqdm

    return tqdm(iterable, desc=desc, unit=unit, total=total, leave=False, dynamic_ncols=True)


def embed_items(model, items, *, cache=None, progress: bool = True) -> torch.Tensor:
    """Embeddings of validation clips (``ClipItem``s), read from ``cache`` when it holds as many rows, else
    computed (and written there): what the calibration scripts and benchmarks embed.

    Args:
        model (EmbeddingModel): the encoder.
        items (Sequence[ClipItem]): the clips, in order.
        cache (str, Path or None, optional): a ``torch.save`` file of these clips' embeddings. Default: ``None``.
        progress (bool, optional): a progress bar while embedding. Default: ``True``.

    Returns:
        Tensor: (N, D) L2-normalised float32 embeddings, in the items' order.

    Raises:
        ParameterError: a clip cannot be read, or ``cache`` holds another number of rows.
    """
    from pathlib import Path

    if cache is not None and Path(cache).is_file():
        emb = torch.load(cache)
        if len(emb) != len(items):
            raise ParameterError(f"{cache} holds {len(emb)} embeddings, not the {len(items)} clips asked; delete it")
        return emb
    emb, _, failures = model.embed_all([it.path for it in items], on_error="skip", progress=progress)
    if failures:
        raise ParameterError(f"{len(failures)} validation clips could not be read; the first: {failures[0].error}")
    if cache is not None:
        from ..files import write_output

        write_output(cache, lambda tmp: torch.save(emb, tmp))
    return emb


def embed_dataset(model, dataset, *, batch_size: int = 64, progress: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Embeddings of every whole clip of ``dataset`` (its loading and caching, the model's length policy).

    Args:
        model (EmbeddingModel): the encoder; its :meth:`~audiosiam.models.EmbeddingModel.embed` is called.
        dataset (AudioClipDataset): the clips; each is loaded whole (``dataset.load``), not cropped or
            augmented.
        batch_size (int, optional): windows per forward pass. Default: ``64``.
        progress (bool, optional): progress bars over the clips read and the batches embedded.
            Default: ``False``.

    Returns:
        ``(embeddings (N, D), labels (N,))``: L2-normalised float32 embeddings on the CPU, and the
        dataset's integer class indices, in the dataset's order.
    """
    waves = [dataset.load(i) for i in progress_bar(range(len(dataset)), progress, "reading clips", "clip")]
    emb = model.embed(waves, sample_rate=dataset.sample_rate, batch_size=batch_size, progress=progress)
    return emb, torch.as_tensor(dataset.labels)
