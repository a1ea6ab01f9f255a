"""Which clips of the project's multi-source sets train and which only validate (decided before any training
on them, 2026-12-07; see DATA_SOURCES.md).

The sets (``../shared/data``, or ``$AUDIOSIAM_SHARED_DATA``) were made for two needs: the same kind of sound
recorded by several sources, and validation domains of varied difficulty. Training on a class removes it
from validation for good, so most stay validation only:

* ``game_foley`` (21 classes, 150 clips, 9 game packages) and ``animal_vocal`` (12 animals, 59 clips, 2-3
  sources each): **validation only**. Their cross-source rows are what they are for; seven of the held-out
  kinds of sound (birds, cows, sheep, dogs, water, thunder, explosions) are among their classes, and the
  rest are too few clips to teach anything a 10,000-clip corpus does not.
* ``karoryfer_instruments``: the alto saxophone (each take on two microphones at once) is **validation
  only** (notes across microphones); the double bass and tagelharpa techniques (9 classes) **train**.
* ``body_percussion`` (14 classes, one source): **validation only**, a calibration domain of its own
  difficulty.
* ``arabic_speech_commands`` (40 keywords x 30 speakers): keywords and speakers are each ranked by the sha1
  of their name; the first 20 keywords and the first 10 speakers **validate** (the keyword row: those
  keywords, every speaker; the speaker row: those speakers, every keyword), the other 20 keywords spoken
  by the other 20 speakers **train** (the default learns those words, the speaker preset those voices).
"""

from __future__ import annotations

import csv
import hashlib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from .items import ClipItem, manifest_items
from .locations import shared_data
from .sources import DataSource, validation_items


def _ranked(names) -> list[str]:
    return sorted(set(names), key=lambda n: hashlib.sha1(n.encode()).hexdigest())


@lru_cache(maxsize=4)
def arabic_split(root: Path) -> dict[str, list[str]]:
    """The Arabic keywords and speakers that train and that validate.

    Args:
        root (Path): the shared data folder.

    Returns:
        dict: ``train_keywords``, ``validation_keywords`` (20 each), ``train_speakers`` (20) and
        ``validation_speakers`` (10), each sorted.
    """
    with open(root / "arabic_speech_commands" / "manifest.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    keywords, speakers = _ranked(r["label"] for r in rows), _ranked(r["speaker"] for r in rows)
    return {
        "validation_keywords": sorted(keywords[:20]),
        "train_keywords": sorted(keywords[20:]),
        "validation_speakers": sorted(speakers[:10]),
        "train_speakers": sorted(speakers[10:]),
    }


@dataclass
class ValidationSet:
    """One validation row: its clips and how its episodes are drawn.

    Attributes:
        name (str): the row's name in tables.
        items (list[ClipItem]): the clips, with their class and group (package, microphone, speaker).
        cross_group (bool): support and query from different groups.
        n_query (int): queries per class and episode.
        domain (str): the calibration domain it belongs to.
        speech (bool): spoken words or voices (the sound-effects teacher knows nothing of them).
            Default: ``False``.
    """

    name: str
    items: list[ClipItem]
    cross_group: bool
    n_query: int
    domain: str
    speech: bool = False


def validation_sets(root: Path | None = None) -> list[ValidationSet]:
    """The validation rows of the multi-source sets (none of their clips is ever trained on).

    Args:
        root (Path or None, optional): the shared data folder; ``None``: :func:`shared_data`. Default: ``None``.

    Returns:
        list[ValidationSet]: foley kinds across packages, animals across sources, saxophone notes across
        microphones, body percussion, Arabic keywords across speakers, Arabic speakers across words.
    """
    root = Path(root) if root is not None else shared_data()
    arabic = arabic_split(root)
    return [
        ValidationSet(
            "foley kinds across packages",
            manifest_items(root / "game_foley/manifest.csv", group_column="package"),
            cross_group=True,
            n_query=1,
            domain="game_foley",
        ),
        ValidationSet(
            "animals across sources",
            manifest_items(root / "animal_vocal/manifest.csv", group_column="package"),
            cross_group=True,
            n_query=1,
            domain="animal_vocal",
        ),
        ValidationSet(
            "saxophone notes across microphones",
            manifest_items(
                root / "karoryfer_instruments/manifest.csv",
                label_column="note",
                where={"instrument": ["alto_sax"]},
                group_column="mic",
            ),
            cross_group=True,
            n_query=1,
            domain="saxophone",
        ),
        ValidationSet(
            "body percussion",
            manifest_items(root / "body_percussion/manifest.csv", group_column="source"),
            cross_group=False,
            n_query=1,
            domain="body_percussion",
        ),
        ValidationSet(
            "Arabic keywords across speakers",
            manifest_items(
                root / "arabic_speech_commands/manifest.csv",
                where={"label": arabic["validation_keywords"]},
                group_column="speaker",
            ),
            cross_group=True,
            n_query=1,
            domain="arabic_keywords",
            speech=True,
        ),
        ValidationSet(
            "Arabic speakers across words",
            manifest_items(
                root / "arabic_speech_commands/manifest.csv",
                label_column="speaker",
                where={"speaker": arabic["validation_speakers"]},
                group_column="label",
            ),
            cross_group=True,
            n_query=1,
            domain="arabic_speakers",
            speech=True,
        ),
    ]


def training_sources(root: Path | None = None, *, speaker: bool = False) -> list[DataSource]:
    """The training parts of the multi-source sets, as recipe sources.

    Args:
        root (Path or None, optional): the shared data folder; ``None``: :func:`shared_data`. Default: ``None``.
        speaker (bool, optional): for the ``speaker`` preset (classes are the training speakers) instead of
            the default (classes are the training keywords, and the instrument techniques). Default: ``False``.

    Returns:
        list[DataSource]: sources named ``arabic_keywords`` and ``karoryfer`` (default) or ``arabic_speakers``.
    """
    root = Path(root) if root is not None else shared_data()
    arabic = arabic_split(root)
    manifest = str(root / "arabic_speech_commands/manifest.csv")
    where = {"label": arabic["train_keywords"], "speaker": arabic["train_speakers"]}
    if speaker:
        return [DataSource(manifest, "arabic_speakers", ["speaker"], where, group_column="label")]
    return [
        DataSource(manifest, "arabic_keywords", ["label"], where, group_column="speaker"),
        DataSource(
            str(root / "karoryfer_instruments/manifest.csv"),
            "karoryfer",
            ["label"],
            {"instrument": ["double_bass", "tagelharpa"]},
            group_column="source",
        ),
    ]


def calibration_items(
    info: dict,
    extra=(),
    *,
    multi_source: bool = True,
    speech: bool = True,
    domains=None,
    root: Path | None = None,
) -> list[ClipItem]:
    """The clips a model's calibration map is fitted on and its decisions are judged on: its own validation
    classes (:func:`~audiosiam.data.sources.validation_items`), ``extra`` sources, and the rows of
    :func:`validation_sets` (each its own domain, labels prefixed by it so that classes never merge across
    rows).

    Args:
        info (dict): the checkpoint's ``model.info``.
        extra (Sequence[str], optional): recipes or manifests of more classes the model never trained on.
            Default: ``()``.
        multi_source (bool, optional): add the multi-source validation rows. Default: ``True``.
        speech (bool, optional): with ``multi_source``, keep the speech rows (the ``sfx`` model knows nothing
            of speech). Default: ``True``.
        domains (Sequence[str] or None, optional): with ``multi_source``, only the rows of these domains
            (e.g. ``["arabic_speakers"]`` for the ``speaker`` preset); ``None``: every row. Default: ``None``.
        root (Path or None, optional): the shared data folder (:func:`shared_data`). Default: ``None``.

    Returns:
        list[ClipItem]: the clips; each one's ``source`` is its domain.

    Raises:
        ParameterError: no clip at all.
    """
    from dataclasses import replace

    from ..errors import ParameterError
    from ..models.info import ModelInfo

    items = validation_items(info, extra) if ModelInfo(info).validation_classes or extra else []
    if multi_source:
        rows = validation_sets(root)
        unknown = sorted(set(domains or ()) - {row.domain for row in rows})
        if unknown:
            raise ParameterError(f"no validation row of domain {unknown}; the domains: {[r.domain for r in rows]}")
        for row in rows:
            if (speech or not row.speech) and (domains is None or row.domain in domains):
                items += [replace(it, label=f"{row.domain}/{it.label}", source=row.domain) for it in row.items]
    if not items:
        raise ParameterError(
            "no validation clips: the checkpoint lists none; pass extra sources or the multi-source rows"
        )
    return items


def add_validation_arguments(parser) -> None:
    """The options that choose a model's validation clips, one vocabulary for every program that fits or
    judges calibration and decisions (``scripts/fit_calibration.py``, ``benchmarks/calibration_transfer.py``,
    ``benchmarks/decisions.py``): ``--validation-sets``, ``--no-validation-sets``, ``--no-speech``,
    ``--same-domain`` and ``--embeddings``. Read them back with :func:`validation_clips`.

    Args:
        parser (argparse.ArgumentParser): the program's parser.
    """
    group = parser.add_argument_group("validation clips (the model's own validation classes, plus)")
    rows = group.add_mutually_exclusive_group()
    rows.add_argument(
        "--validation-sets",
        nargs="+",
        metavar="DOMAIN",
        default=None,
        help="only these multi-source validation rows (default: every row; see audiosiam/data/splits.py)",
    )
    rows.add_argument(
        "--no-validation-sets", action="store_true", help="none of the multi-source rows: the model's own classes"
    )
    group.add_argument(
        "--no-speech", action="store_true", help="leave out the speech rows (a model that knows no speech: sfx)"
    )
    group.add_argument(
        "--same-domain", action="append", default=[], metavar="A=B", help="domain A's classes count as domain B's"
    )
    group.add_argument("--embeddings", help="cache file of the validation embeddings (read if present, else written)")


@dataclass(frozen=True)
class ValidationClips:
    """The clips :func:`validation_clips` chose, with an integer label and a domain per clip.

    Attributes:
        items (list[ClipItem]): the clips.
        labels (list[int]): each clip's class, an index into ``classes``.
        classes (list[str]): the class names, sorted.
        domains (list[str]): each clip's domain, after ``--same-domain`` merges.
    """

    items: list[ClipItem]
    labels: list[int]
    classes: list[str]
    domains: list[str]


def validation_clips(args, info: dict, extra=()) -> ValidationClips:
    """The clips the options of :func:`add_validation_arguments` choose for a model.

    Args:
        args (argparse.Namespace): the parsed options.
        info (dict): the model's checkpoint info (its own validation classes).
        extra (Sequence[str], optional): recipes or manifests of more unseen classes. Default: ``()``.

    Returns:
        ValidationClips: the clips, their labels and domains.

    Raises:
        ParameterError: a ``--same-domain`` that is not ``A=B``, an unknown domain, or no clip at all.
    """
    from ..errors import ParameterError

    merge = {}
    for pair in args.same_domain:
        a, sep, b = pair.partition("=")
        if not (sep and a and b):
            raise ParameterError(f"--same-domain {pair!r}: expected A=B (domain A's classes count as B's)")
        merge[a] = b
    items = calibration_items(
        info,
        extra,
        multi_source=not args.no_validation_sets,
        speech=not args.no_speech,
        domains=args.validation_sets,
    )
    classes = sorted({it.label for it in items})
    index = {name: i for i, name in enumerate(classes)}
    return ValidationClips(
        items=items,
        labels=[index[it.label] for it in items],
        classes=classes,
        domains=[merge.get(it.source, it.source) for it in items],
    )
