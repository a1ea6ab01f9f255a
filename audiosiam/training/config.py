"""The settings of a training run (:class:`TrainConfig`), saved in every checkpoint the run writes."""

from __future__ import annotations

from dataclasses import InitVar, dataclass, field

from .._deprecated import renamed

SAMPLE_RATE = 16000  # the rate every trained model's front end reads


@dataclass
class TrainConfig:
    """Everything that defines a training run (saved in checkpoints).

    The fields are the options of ``audiosiam train`` (``init`` spelt ``--model`` there).

    Attributes:
        out (str): where the best checkpoint is written; the run's files go to the folder ``<stem>.run``
            beside it. Default: ``"model.pt"``.
        epochs (int): passes of ``steps_per_epoch`` steps, at least 1. Default: ``20``.
        steps_per_epoch (int or None): steps (PK batches) per epoch; ``None``: about one pass over the
            training clips. Default: ``None``.
        time_budget_minutes (float or None): the whole run's time, from reading the data to writing ``out``:
            training stops (the epoch under way is validated and saved) early enough to leave the finishing
            steps their measured time; the learning rate decays over the training time (or over the steps,
            whichever is further along), so the run is not bit-reproducible, and the warm-up lasts at most a
            tenth of it. ``None``: no budget. Default: ``None``.
        classes_per_batch (int): classes per batch (P of a PK batch), capped at the number of usable
            classes. Default: ``32``.
        clips_per_class (int): clips per class in a batch (K of a PK batch), at least 2; also how many
            entries each label-free clip gets, so a batch can draw several views of it. Default: ``4``.
        clip_seconds (float): length of the random training crops. Default: ``1.0``.
        loss (str): training loss: ``"triplet"`` or ``"contrastive"``. Default: ``"triplet"``.
        mining (str): triplet mining: ``"batch_hard"``, ``"batch_all"`` or ``"semi_hard"`` (triplet loss
            only). Default: ``"batch_hard"``.
        margin (float): triplet margin (triplet loss only). Default: ``0.2``.
        metric (str): distance between embeddings: ``"euclidean"``, ``"sqeuclidean"`` or ``"cosine"``.
            Default: ``"euclidean"``.
        lr (float): peak learning rate (AdamW), after the warm-up and before the cosine decay; positive.
            Default: ``2e-3``.
        weight_decay (float): AdamW weight decay, >= 0. Default: ``0.05``.
        warmup_steps (int): linear warm-up steps (with a time budget: or a tenth of the training time, whichever
            ends first, with a warning). Default: ``100``.
        embedding_dim (int): embedding size D. Default: ``192``.
        n_mels (int): mel bands of the front end. Default: ``64``.
        normalize (str): log-mel normalisation: ``"utterance"`` or ``"band"`` (see :mod:`audiosiam.functional`).
            Default: ``"utterance"``.
        channels (list of int): encoder widths: stem, then one per stage. Default: ``[32, 48, 96, 160]``.
        blocks (list of int): residual blocks per stage (one entry fewer than ``channels``).
            Default: ``[1, 1, 1]``.
        augment (bool): waveform augmentation (gain, noise, background mixing, time shift, band limiting) and
            SpecAugment; the four options below act only with it. Default: ``True``.
        speed_perturb (float): with ``augment``: half the clips played at 1 +/- up to this speed (e.g.
            0.15); ``0``: off. Default: ``0.0``.
        reverb (float): with ``augment``: probability of a synthetic room response per clip; ``0``: off.
            Default: ``0.0``.
        equalizer (float): with ``augment``: probability of a random +/-9 dB smooth equaliser per clip;
            ``0``: off. Default: ``0.0``.
        mix_batch (float): with ``augment``: probability of mixing in a clip of another class (5-20 dB SNR);
            ``0``: off. Default: ``0.0``.
        val_classes (int or None): labelled classes with 6+ clips held out for validation (drawn with
            ``seed``); ``None``: a tenth of them, 5 to 50; ``0``: no validation, and the best checkpoint is
            the one of lowest training loss. Default: ``None``.
        val_sources (list of str or None): sources whose classes may be held out for validation (e.g. to
            keep every spoken word of a small word set in training); ``None``: all. Default: ``None``.
        val_classes_of (str or None): validate on exactly the validation classes of this checkpoint (a
            preset name such as ``"default"``, or a path) instead of a new draw; for fine-tuning, so that
            no class the starting model trained on is validated on, and none it was validated on is
            trained on, whatever data was added. Overrides ``val_classes`` and ``val_sources``.
            Default: ``None``.
        val_episodes (int): validation episodes (5-way 1-shot, seeded) per epoch. Default: ``300``.
        calibration_episodes (int): open-set episodes of the validation classes on which the written
            checkpoint's calibration map is fitted at the end of the run (``audiosiam.fewshot.calibration``);
            ``0``, or no validation: no map (classification then falls back to the earlier rule).
            Default: ``3000``.
        unlabelled_share (float): fraction of each batch's classes drawn from label-free clips, when there
            are any. Default: ``0.3``.
        balance_sources (bool): each labelled source gets an equal share of the drawn classes (weighted by
            its ``DataSource.weight``), so a source with 8 words counts as much as one with 100 drum sounds;
            ``False``: every class equally likely. Default: ``True``.
        seed (int): random seed (initial weights, crops, augmentation, batches, validation split).
            Default: ``0``.
        num_workers (int): DataLoader worker processes. Default: ``0``.
        device (str): where to train: ``"auto"`` (CUDA when available, else the CPU), ``"cpu"`` or
            ``"cuda"``. Default: ``"auto"``.
        resume (bool): continue the run in ``out``'s ``.run`` folder from its ``state.pt``, with nothing lost
            or repeated. Default: ``False``.
        init (str or None): start from this checkpoint's weights (fine-tuning): a preset name such as
            ``"default"``, or a checkpoint path, whose architecture must match this config's. ``None``:
            random initial weights. Default: ``None``.
        teacher (str or None): distil from this model (a preset such as ``"sfx"``, or a checkpoint): each
            step adds ``distill_weight`` times :func:`~audiosiam.losses.relational_distillation_loss` between
            the student's embeddings of the batch's clips of ``distill_sources`` and the teacher's embeddings
            of the same clips (whole clips, computed once and cached on disk by content:
            :class:`~audiosiam.data.teacher_cache.TeacherCache`). ``None``: no teacher. Default: ``None``.
        distill_weight (float): weight of the teacher's term against the triplet/contrastive loss, >= 0.
            Default: ``1.0``.
        distill_sources (list of str or None): the sources (recipe names, labelled and label-free alike)
            whose clips the teacher is asked about: those it knows (a sound-effects teacher: not speech).
            ``None``: every source. Default: ``None``.
        distill_temperature (float): softmax temperature of the relational loss (> 0). Default: ``0.5``.
        anchor_weight (float): with ``init``, weight of the same relational loss between the student and a
            frozen copy of the starting model, on the clips *outside* ``distill_sources``: keeps what the
            starting model knew where the teacher knows nothing (speech). ``0``: off. Default: ``0.0``.
        distill_projector (bool): compute the teacher's term on a learnt linear map of the student's embedding
            (identity at the start, dropped after training) instead of the embedding itself: the teacher's
            ranking is taught to a view of the embedding, which leaves the embedding freer to keep what the
            teacher knows nothing of (the projector of feature distillation; Miles and Mikolajczyk, 2024).
            Default: ``False``.
        teacher_cache (str or None): root folder of the teacher embedding cache; ``None``:
            ``$AUDIOSIAM_TEACHER_CACHE`` or ``~/.cache/audiosiam/teacher``. Default: ``None``.
        p (int or None): the old name of ``classes_per_batch``, for one release. Default: ``None``.
        k (int or None): the old name of ``clips_per_class``, for one release. Default: ``None``.
    """

    out: str = "model.pt"
    epochs: int = 20
    steps_per_epoch: int | None = None
    time_budget_minutes: float | None = None
    classes_per_batch: int = 32
    clips_per_class: int = 4
    clip_seconds: float = 1.0
    loss: str = "triplet"
    mining: str = "batch_hard"
    margin: float = 0.2
    metric: str = "euclidean"
    lr: float = 2e-3
    weight_decay: float = 0.05
    warmup_steps: int = 100
    embedding_dim: int = 192
    n_mels: int = 64
    normalize: str = "utterance"  # log-mel normalisation: "utterance" or "band" (see audiosiam.functional)
    channels: list[int] = field(default_factory=lambda: [32, 48, 96, 160])
    blocks: list[int] = field(default_factory=lambda: [1, 1, 1])
    augment: bool = True
    speed_perturb: float = 0.0  # with augment: half the clips played at 1 +/- up to this speed (e.g. 0.15); 0: off
    reverb: float = 0.0  # with augment: probability of a synthetic room response per clip; 0: off
    equalizer: float = 0.0  # with augment: probability of a random +/-9 dB smooth equaliser per clip; 0: off
    mix_batch: float = 0.0  # with augment: probability of mixing in a clip of another class (5-20 dB SNR); 0: off
    val_classes: int | None = None
    val_sources: list[str] | None = None  # sources whose classes may be held out for validation (None: all)
    val_classes_of: str | None = None  # validate on this checkpoint's validation classes (fine-tuning)
    val_episodes: int = 300
    calibration_episodes: int = 3000  # fitting episodes of the checkpoint's calibration map; 0: none
    unlabelled_share: float = 0.3  # fraction of each batch's classes drawn from label-free clips
    balance_sources: bool = True  # each labelled source gets an equal share of the drawn classes
    seed: int = 0
    num_workers: int = 0
    device: str = "auto"
    resume: bool = False
    init: str | None = None  # start from this checkpoint's weights (fine-tuning)
    teacher: str | None = None  # distil from this model (a preset or a checkpoint)
    distill_weight: float = 1.0
    distill_sources: list[str] | None = None  # sources whose clips the teacher is asked about (None: all)
    distill_temperature: float = 0.5
    anchor_weight: float = 0.0  # relational loss to the frozen starting model, outside distill_sources
    distill_projector: bool = False  # the teacher's term on a learnt linear view of the embedding
    teacher_cache: str | None = None
    # the old names of classes_per_batch and clips_per_class, for one release
    p: InitVar[int | None] = None
    k: InitVar[int | None] = None

    def __post_init__(self, p: int | None, k: int | None) -> None:
        if p is not None or k is not None:
            renamed(
                "TrainConfig(p=..., k=...)", "TrainConfig(classes_per_batch=..., clips_per_class=...)", stacklevel=4
            )
            self.classes_per_batch = self.classes_per_batch if p is None else p
            self.clips_per_class = self.clips_per_class if k is None else k
