"""What a checkpoint records about its model besides the weights, read through one typed record.

A checkpoint's ``info`` is a table of plain values (the file format: ``audiosiam.models.checkpoint``),
written by training, ``scripts/fit_calibration.py``, ``scripts/fit_int8_ranges.py`` and the presets.
:class:`ModelInfo` is that table, a ``dict`` still (so files, old code and ``info["key"]`` keep working),
with a property per entry that the package reads: the key's name and the entry's type and default are
written once, here, instead of at every place that reads it.
"""

from __future__ import annotations

from typing import Any, Mapping

from .quantized import RANGES_KEY


class ModelInfo(dict):
    """A checkpoint's ``info``: a ``dict`` of plain values with typed, read-only views of its entries.

    Absent or empty entries read as ``None`` (one value: a threshold, a map, a version) or as an empty
    container (lists, tables), so callers need no ``or []``.

    Example:
        >>> info = ModelInfo({"label_set": ["dog", "bell"], "verification_threshold": 0.7})
        >>> info.label_set, info.verification_threshold, info.calibration
        (['dog', 'bell'], 0.7, None)
    """

    @property
    def calibration(self) -> dict | None:
        """The calibration maps, one per decision rule (``{"prototype": ..., "knn": ...}``; a single map in
        checkpoints of before the k-NN rule had its own), as stored: ``audiosiam.fewshot.calibration``
        reads them. ``None``: the model has none."""
        stored = self.get("calibration")
        return stored if isinstance(stored, dict) and stored else None

    @property
    def int8_ranges(self) -> dict[str, list[float]] | None:
        """The int8 trunk's activation ranges (``{point: [low, high]}``: ``audiosiam.models.quantized``);
        ``None``: long recordings run this model in float32."""
        stored = self.get(RANGES_KEY)
        return stored if isinstance(stored, dict) and stored else None

    @property
    def verification_threshold(self) -> float | None:
        """The equal-error verification threshold (a cosine similarity in [-1, 1]) stored at the top, or in
        the ``metrics`` of older checkpoints; ``None`` when there is none.

        Raises:
            ValueError: a stored value that is not a number in [-1, 1] (NaN, 5.0, ``"x"``, ``true``).
        """
        stored = self.get("verification_threshold", self.metrics.get("verification_threshold"))
        if stored is None:
            return None
        # float32 similarities of identical clips reach 1 + 6e-8: a rounding, not damage
        if (
            isinstance(stored, bool)
            or not isinstance(stored, (int, float))
            or not -1.0 - 1e-6 <= float(stored) <= 1.0 + 1e-6
        ):
            raise ValueError(
                f"the model's verification threshold {stored!r} is not a similarity in [-1, 1]; the checkpoint "
                "is damaged (refit it with scripts/fit_calibration.py)"
            )
        return min(1.0, max(-1.0, float(stored)))

    @property
    def label_set(self) -> list[str]:
        """The classes the model was trained on (labelled training data)."""
        return list(self.get("label_set") or [])

    @property
    def validation_classes(self) -> list[str]:
        """The classes held out of its training to validate it (calibration maps are fitted on them)."""
        return list(self.get("validation_classes") or [])

    @property
    def sources(self) -> list[dict]:
        """Its labelled training sources, as :class:`~audiosiam.data.sources.DataSource` fields."""
        return list(self.get("sources") or [])

    @property
    def unlabelled(self) -> list[dict]:
        """Its label-free training sources, as :class:`~audiosiam.data.sources.DataSource` fields."""
        return list(self.get("unlabelled") or [])

    @property
    def background(self) -> list[str]:
        """The folders and manifests of background audio it was trained with."""
        return list(self.get("background") or [])

    @property
    def metrics(self) -> dict[str, Any]:
        """The validation record of the epoch kept (accuracy, EER, epoch, ...)."""
        stored = self.get("metrics")
        return dict(stored) if isinstance(stored, dict) else {}

    @property
    def audiosiam_version(self) -> str | None:
        """The audiosiam version that wrote it."""
        return self.get("audiosiam_version")

    @property
    def training_minutes(self) -> float | None:
        """Minutes of training until the epoch kept."""
        return self.get("training_minutes")

    @property
    def attribution(self) -> str | None:
        """Credit and licence of weights made by others (the ``sfx`` preset)."""
        return self.get("attribution")


def model_info(model) -> ModelInfo:
    """The :class:`ModelInfo` of ``model`` (an :class:`~audiosiam.models.EmbeddingModel`, or anything with an
    ``info`` mapping; an empty record for anything else).

    Args:
        model (Any): the model.

    Returns:
        ModelInfo: its record (the model's own object where it is one already).
    """
    info = getattr(model, "info", None)
    if isinstance(info, ModelInfo):
        return info
    return ModelInfo(info) if isinstance(info, Mapping) else ModelInfo()
