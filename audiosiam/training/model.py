"""The encoder a run trains: a fresh one from the settings, or a trained model's weights to fine-tune."""

from __future__ import annotations

from dataclasses import asdict

from ..errors import ParameterError
from ..models import EmbeddingModel, EncoderConfig, ResNetEncoder
from ..transforms import (
    LogMelSpectrogram,
)
from .config import SAMPLE_RATE, TrainConfig


def architecture_of(init: str) -> dict:
    """The architecture options (``n_mels``, ``channels``, ``blocks``, ``embedding_dim``) of the model a
    run would fine-tune, a preset name or a checkpoint path, as :class:`TrainConfig` spells them."""
    from ..models import load_model

    encoder = load_model(init).encoder.config
    return {
        "n_mels": encoder.n_mels,
        "channels": list(encoder.channels),
        "blocks": list(encoder.blocks),
        "embedding_dim": encoder.embedding_dim,
    }


def build_model(config: TrainConfig) -> EmbeddingModel:
    frontend = LogMelSpectrogram(SAMPLE_RATE, n_mels=config.n_mels, normalize=config.normalize)
    encoder = ResNetEncoder(
        EncoderConfig(
            n_mels=config.n_mels,
            channels=tuple(config.channels),
            blocks=tuple(config.blocks),
            embedding_dim=config.embedding_dim,
        )
    )
    model = EmbeddingModel(frontend, encoder)
    if config.init:  # a checkpoint or a bundled preset name (e.g. "default")
        from ..models import load_model

        start = load_model(config.init)
        theirs, ours = start.encoder.config, encoder.config
        differ = [
            f"{k} {getattr(theirs, k)} (this run: {getattr(ours, k)})"
            for k in asdict(ours)
            if getattr(theirs, k) != getattr(ours, k)
        ]
        if differ or start.frontend.n_mels != frontend.n_mels:
            raise ParameterError(
                f"init={config.init!r}: its encoder has {', '.join(differ) or f'n_mels {start.frontend.n_mels}'}; "
                "to fine-tune it, leave out the architecture options (--channels, --blocks, --embedding-dim, "
                "--n-mels) or give the values it was trained with"
            )
        model.load_state_dict(start.state_dict())
    return model
