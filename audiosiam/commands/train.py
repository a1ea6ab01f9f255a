"""`audiosiam train`: train an encoder on labelled (and/or unlabelled) audio."""

from __future__ import annotations

import argparse
from dataclasses import fields

from . import _common

EXAMPLES = """\
examples:
  # class folders: data/<class>/*.wav
  audiosiam train data/ --out model.pt --epochs 20

  # a CSV manifest, choosing the label column and a subset of rows
  audiosiam train fsdd/manifest.csv --label-column digit --where digit=0,1,2,3,4 --group-column speaker \\
      --out fsdd04.pt --time-budget-minutes 20

  # several sources, unlabelled audio and background noise from a JSON recipe
  audiosiam train recipe.json --out general.pt

  # leave one speaker out of a recipe (manifest rows of every source with a speaker column)
  audiosiam train benchmarks/recipes/fsdd_digits_0-4.json --exclude speaker=theo --out no_theo.pt

  # two processes (DDP; gloo on CPU, NCCL on GPU)
  torchrun --nproc_per_node=2 -m audiosiam train data/ --out model.pt

Writes OUT (the best checkpoint by held-out few-shot accuracy, with its calibration map and int8 ranges;
it appears once, complete, at the end) and OUT's stem + ".run/" with last.pt, best.pt, state.pt (for
--resume), metrics.csv, metrics.json and curves.png. The last lines warn when the model is weak (held-out
accuracy near chance, or `unknown` to nearly every clip of an enrolled class).
"""


# The one-line summary `audiosiam --help` shows.
HELP = "train an encoder (triplet or contrastive loss)"


# One vocabulary across commands: --model is the model a command starts from (here: the weights to
# fine-tune), -k/--k-shot count neighbours and shots elsewhere, so the PK batch shape says what it is.
RENAMED = {"init": "model"}
# the one-letter spellings of a PK batch's shape, before they took the names of TrainConfig's fields
OLD_FLAGS = {"classes_per_batch": "--p", "clips_per_class": "--k"}
CHOICES = {
    "loss": ("triplet", "contrastive"),
    "mining": ("batch_hard", "batch_all", "semi_hard"),
    "metric": ("euclidean", "sqeuclidean", "cosine"),
    "normalize": ("utterance", "band"),
    "device": ("auto", "cpu", "cuda"),
}
# the range of each numeric setting checked by the parser (a value wrong by itself exits 2, as elsewhere)
RANGES = {
    "epochs": _common.positive_int,
    "steps_per_epoch": _common.positive_int,
    "classes_per_batch": _common.positive_int,
    "clips_per_class": _common.positive_int,
    "val_episodes": _common.positive_int,
    "time_budget_minutes": _common.positive_number,
    "clip_seconds": _common.positive_number,
    "lr": _common.positive_number,
    "weight_decay": _common.non_negative_number,
    "margin": _common.non_negative_number,
}
# the encoder's shape: (parser type, help)
ARCHITECTURE = {
    "n_mels": (_common.positive_int, "mel bands"),
    "channels": (_common.whole_numbers, "encoder widths: stem,stage1,..."),
    "blocks": (_common.whole_numbers, "residual blocks per stage"),
    "embedding_dim": (_common.positive_int, "embedding size"),
}
HELPS = {
    "init": "start from this model's weights (a preset name such as default, or a checkpoint)",
    "classes_per_batch": "classes per batch (P of a PK batch)",
    "clips_per_class": "clips per class in a batch (K of a PK batch)",
    "epochs": "passes of --steps-per-epoch steps",
    "steps_per_epoch": "steps per epoch (default: about one pass)",
    "time_budget_minutes": "the whole run's minutes, setup and finishing steps (calibration, int8 ranges) "
    "included: training stops early enough to leave them their time, timed at the start; the learning rate "
    "decays over the training time",
    "loss": "training loss",
    "mining": "triplet mining",
    "margin": "triplet margin",
    "metric": "distance between embeddings (as audiosiam.ops.pairwise_distance names them)",
    "lr": "peak learning rate (AdamW)",
    "weight_decay": "AdamW weight decay",
    "warmup_steps": "linear warm-up steps (with a time budget: at most a tenth of the training time)",
    "normalize": "log-mel normalisation",
    "augment": "waveform and SpecAugment augmentation",
    "speed_perturb": "play half the clips up to this much faster or slower, e.g. 0.15 (0: off)",
    "reverb": "probability of a synthetic room response per clip (0: off)",
    "equalizer": "probability of a random +/-9 dB equaliser per clip (0: off)",
    "mix_batch": "probability of mixing in another class's clip at 5-20 dB SNR (0: off)",
    "val_classes": "classes held out for validation (default: a tenth of those with 6+ clips, 5 to 50)",
    "val_classes_of": "validate on this checkpoint's validation classes (a preset or path; for fine-tuning)",
    "val_episodes": "validation episodes per epoch",
    "unlabelled_share": "share of each batch's classes that are label-free clips",
    "balance_sources": "give every labelled source an equal (weighted) share of the classes",
    "seed": "random seed",
    "num_workers": "DataLoader worker processes",
    "device": "where to train",
    "clip_seconds": "length of the random training crops",
    "teacher": "distil from this model (e.g. sfx): a relational loss on the clips of --distill-sources",
    "distill_weight": "weight of the teacher's loss against the triplet/contrastive loss",
    "distill_temperature": "softmax temperature of the relational distillation loss",
    "anchor_weight": "with --model: keep the starting model's similarities on clips outside --distill-sources",
    "distill_projector": "compute the teacher's loss on a learnt linear view of the embedding (dropped after training)",
    "teacher_cache": "teacher embedding cache folder (default: ~/.cache/audiosiam/teacher)",
}


def add_parser(subparsers) -> None:
    from ..training import TrainConfig

    p = subparsers.add_parser(
        "train",
        help=HELP,
        description="Train a twin-network audio encoder.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "data", nargs="+", metavar="DATA", help="class folder, CSV manifest or JSON recipe (several allowed)"
    )
    p.add_argument(
        "--label-column", default="label", help="manifest column(s) naming the class, comma-separated (default: label)"
    )
    p.add_argument(
        "--where",
        action="append",
        default=[],
        metavar="COL=V1,V2",
        help="keep only manifest rows whose COL is one of the values (repeatable; default: all rows)",
    )
    p.add_argument(
        "--group-column",
        default=None,
        help="manifest column with the speaker/source (for evaluation splits; default: none)",
    )
    p.add_argument(
        "--exclude",
        action="append",
        default=[],
        metavar="COL=V1,V2",
        help="drop manifest rows whose COL is V1 or V2 from every source with that column, recipes "
        "included (e.g. speaker=theo to hold a speaker out; default: none)",
    )
    p.add_argument(
        "--unlabelled",
        action="append",
        default=[],
        metavar="DIR",
        help="folder of unlabelled clips: label-free training, two crops of a clip as positives "
        "(repeatable; default: none)",
    )
    p.add_argument(
        "--background",
        action="append",
        default=[],
        metavar="DIR",
        help="folder of background-noise clips to mix into training examples (repeatable; default: none)",
    )
    defaults = TrainConfig()
    for f in fields(TrainConfig):
        if f.name in ("out", "resume", "val_sources", "distill_sources", *ARCHITECTURE):
            continue
        default = getattr(defaults, f.name)
        kind = (
            type(default)
            if default is not None
            else (
                float
                if "minutes" in f.name
                else (str if f.name in ("init", "val_classes_of", "teacher", "teacher_cache") else int)
            )
        )
        kind = RANGES.get(f.name, kind)
        flag = "--" + RENAMED.get(f.name, f.name.replace("_", "-"))
        choices = CHOICES.get(f.name)
        help_text = HELPS.get(f.name, f.name.replace("_", " "))
        help_text += f"; one of {', '.join(map(str, choices))}" if choices else ""
        help_text += "" if "default:" in help_text else f" (default: {'none' if default is None else default})"
        if kind is bool:
            p.add_argument(flag, dest=f.name, default=default, action=argparse.BooleanOptionalAction, help=help_text)
        else:
            p.add_argument(flag, dest=f.name, type=kind, default=default, choices=choices, help=help_text)
        old = OLD_FLAGS.get(f.name) or ("--" + f.name.replace("_", "-") if f.name in RENAMED else None)
        if old:  # the old spelling, for one release
            _common.add_deprecated(p, old, flag, f.name, type=kind)
    _common.add_deprecated(p, "--distance", "--metric", "metric", choices=("euclidean", "cosine"))
    # The architecture of a fine-tune is its starting model's: these default to None, read in run().
    for name, (kind, what) in ARCHITECTURE.items():
        default = getattr(defaults, name)
        shown = ",".join(map(str, default)) if isinstance(default, list) else default
        p.add_argument(
            "--" + name.replace("_", "-"),
            dest=name,
            type=kind,
            default=None,
            help=f"{what} (default: --model's, else {shown})",
        )
    p.add_argument(
        "--val-sources",
        default=None,
        metavar="NAME,NAME",
        help="hold validation classes out of these sources only (default: any labelled source)",
    )
    p.add_argument(
        "--distill-sources",
        default=None,
        metavar="NAME,NAME",
        help="sources whose clips the --teacher is asked about, e.g. its non-speech ones (default: every source)",
    )
    p.add_argument("--out", required=True, help="where to write the best checkpoint")
    p.add_argument("--resume", action="store_true", help="continue the run in OUT's .run folder")
    _common.add_progress_option(p)


def architecture(args) -> dict:
    """The encoder options the user gave; those left out are the starting model's (``--model``), else the
    defaults, so a fine-tune needs none of them."""
    from ..training import TrainConfig
    from ..training.model import architecture_of

    given = {name: getattr(args, name) for name in ARCHITECTURE if getattr(args, name) is not None}
    if len(given) == len(ARCHITECTURE):
        return given
    start = architecture_of(args.init) if args.init else {}
    defaults = TrainConfig()
    return {name: given.get(name, start.get(name, getattr(defaults, name))) for name in ARCHITECTURE}


def run(args) -> int:
    from ..data import DataSource, load_sources
    from ..training import TrainConfig, train

    where = _common.parse_where(args.where)
    labelled, unlabelled, background = load_sources(
        args.data,
        label_columns=args.label_column.split(","),
        where=where,
        group_column=args.group_column,
        exclude=_common.parse_where(args.exclude, option="--exclude"),
    )
    unlabelled += [DataSource(d) for d in args.unlabelled]
    background += list(args.background)
    values = {f.name: getattr(args, f.name) for f in fields(TrainConfig) if hasattr(args, f.name)}
    values.update(architecture(args))
    values["val_sources"] = args.val_sources.split(",") if args.val_sources else None
    values["distill_sources"] = args.distill_sources.split(",") if args.distill_sources else None
    config = TrainConfig(**values)
    train(config, labelled, unlabelled=unlabelled, background=background, progress=_common.show_progress(args))
    return 0
