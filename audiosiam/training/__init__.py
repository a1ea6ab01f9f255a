"""Siamese training: PK batches through the shared encoder, triplet or contrastive loss, few-shot validation.

One function, :func:`train`, serves the command line (``audiosiam train``), scripts, and ``torchrun``:

    torchrun --nproc_per_node=2 -m audiosiam train data/ --out model.pt    # DDP: gloo on CPU, NCCL on GPU

* Data: sources (class folders, CSV manifests, or a JSON recipe naming several), combined with class
  names prefixed by the source name. A class-disjoint set of classes is held out for validation, and
  their files with them wherever another source lists them under another class.
  ``unlabelled`` sources train label-free: every clip is its own class, and its positives are other
  random crops and augmentations of the same clip.
* Each step: a PK batch (P classes x K clips) of random ``clip_seconds`` crops with waveform
  augmentation (gain, noise, background mixing, time shift, band limiting; optionally speed, reverb,
  equaliser and mixing with another class's clip), log-mel, SpecAugment, encoder, loss.
  Under DDP the embeddings of all ranks are gathered (differentiably) before mining.
* Schedule: AdamW, linear warm-up, cosine decay over the run. With a time budget the decay follows
  elapsed time instead of steps (then the run is not bit-reproducible; with ``epochs`` it is, on CPU), and
  the warm-up lasts at most a tenth of the training time.
* A time budget holds the whole run: before training, the steps after it (the last validation, the
  calibration map, the int8 ranges) are timed on a small share of their work, and training stops early
  enough to leave them that time (``budget.Budget``).
* Each epoch: few-shot accuracy (5-way 1-shot, seeded episodes) and EER on the held-out classes;
  ``best.pt`` (by accuracy) and ``last.pt`` checkpoints; ``state.pt`` (weights, optimizer, schedule,
  epoch, history: one atomic file, the epoch's commit) so ``resume=True`` continues with nothing lost
  or repeated whatever moment a run was killed; ``metrics.csv``, ``metrics.json`` and a ``curves.png``
  plot. At the end the best checkpoint gets its calibration map and int8 ranges in the run folder and is
  then written to ``out`` in one atomic replace (``out`` appears once, complete: ``finish.finish_run``); the
  closing lines say when the model is weak (``finish.weakness``).
* A resume needs ``state.pt``, ``best.pt`` and the same training data: a run carried to another machine
  copies those two files (about 4x the model's size: ``state.pt`` holds the weights and the optimizer's two
  moments) into the new ``out``'s ``.run`` folder and rebuilds the corpus; ``state.pt`` records a digest of
  the clips (source, class, file name) and a resume on other data is refused.

The package is the run's steps, a file each: ``loop`` (:func:`train` as the list of steps, one epoch of
them, validation), ``data`` (sources, validation split, sampling weights, augmentation), ``model``,
``distillation``, ``schedule``, ``budget``, ``state`` (commits and resume), ``finish`` (the written model's
calibration map and int8 ranges, the weak-model check), ``distributed`` and ``callbacks`` (what runs after
each epoch: the curves plot by default).
"""

from __future__ import annotations

from .._deprecated import withdrawn_exports
from .callbacks import plot_curves
from .config import TrainConfig
from .loop import train

__all__ = [
    "train",
    "TrainConfig",
    "plot_curves",
]

# Exported before 0.1.0, internal (or elsewhere) now: still found here for one release, with a warning.
__getattr__ = withdrawn_exports(
    __name__,
    {
        "DataSource": "audiosiam.data",
        "load_sources": "audiosiam.data",
    },
)
