"""The relational terms of a run besides its triplet or contrastive loss: the teacher's (``--teacher``) and
the frozen starting model's (``--anchor-weight``)."""

from __future__ import annotations

import torch

from ..data import AudioClipDataset
from ..errors import ParameterError
from ..losses.distillation import relational_distillation_loss
from ..models import EmbeddingModel
from .config import TrainConfig


class Distillation:
    """The relational terms of a run: the teacher's on the clips of ``distill_sources`` (embeddings read
    once from the cache, per training item) and the frozen starting model's on the others."""

    def __init__(self, config: TrainConfig, train_set: AudioClipDataset, model: EmbeddingModel, say, progress: bool):
        self.config = config
        if config.distill_weight < 0 or config.anchor_weight < 0 or not config.distill_temperature > 0:
            raise ParameterError(
                f"distill_weight={config.distill_weight}, anchor_weight={config.anchor_weight}, "
                f"distill_temperature={config.distill_temperature}: weights must be >= 0 and the temperature > 0"
            )
        if config.anchor_weight > 0 and config.init is None:
            raise ParameterError("anchor_weight > 0 keeps the starting model's similarities: it needs init (--model)")
        sources = {it.source for it in train_set.items}
        wanted = set(config.distill_sources) if config.distill_sources is not None else sources
        unknown = sorted(wanted - sources)
        if unknown:
            raise ParameterError(f"distill_sources: {unknown} are not sources of this run ({sorted(sources)})")
        self.distilled = torch.tensor([it.source in wanted for it in train_set.items], dtype=torch.bool)
        self.teacher_rows = None
        if config.teacher is not None:
            from ..data.teacher_cache import TeacherCache
            from ..models import load_model

            teacher = load_model(config.teacher)
            cache = TeacherCache(teacher, config.teacher_cache)
            index = torch.nonzero(self.distilled).flatten().tolist()
            rows = cache.embeddings([train_set.items[i].path for i in index], progress=progress)
            self.teacher_rows = torch.zeros(len(train_set.items), rows.shape[1] if len(index) else 1)
            self.teacher_rows[index] = rows
            say(
                f"teacher {config.teacher}: {len(set(train_set.items[i].path for i in index))} clips of "
                f"{len(wanted)} sources ({cache.computed} embedded now, the rest read from {cache.folder})"
            )
        self.anchor = None
        if config.anchor_weight > 0:
            import copy

            self.anchor = copy.deepcopy(model.encoder).eval().requires_grad_(False)
        self.projector = None
        if config.distill_projector and self.teacher_rows is not None:
            dim = model.embedding_dim
            self.projector = torch.nn.Linear(dim, dim, bias=False)
            torch.nn.init.eye_(self.projector.weight)

    def to(self, device) -> "Distillation":
        for module in (self.anchor, self.projector):
            if module is not None:
                module.to(device)
        return self

    def parameters(self) -> list[torch.nn.Parameter]:
        """What the optimizer trains besides the model: the projector's weights, if any."""
        return list(self.projector.parameters()) if self.projector is not None else []

    def state_dict(self) -> dict:
        """What a resume needs besides the model and optimizer (the projector's weights)."""
        return {"projector": self.projector.state_dict()} if self.projector is not None else {}

    def load_state_dict(self, state: dict) -> None:
        if self.projector is not None:
            self.projector.load_state_dict(state["projector"])

    @property
    def active(self) -> bool:
        return self.teacher_rows is not None or self.anchor is not None

    def loss(self, emb: torch.Tensor, feats: torch.Tensor, batch: list[int]) -> torch.Tensor:
        """The weighted relational terms for one step's local embeddings ``emb`` of items ``batch``."""
        index = torch.as_tensor(batch)
        taught = self.distilled[index].to(emb.device)
        total = emb.new_zeros(())
        temperature = self.config.distill_temperature
        if self.teacher_rows is not None and self.config.distill_weight > 0:
            target = self.teacher_rows[index].to(emb.device)
            student = emb[taught] if self.projector is None else self.projector(emb[taught])
            total = total + self.config.distill_weight * relational_distillation_loss(
                student, target[taught], temperature=temperature
            )
        if self.anchor is not None:
            kept = ~taught
            with torch.no_grad():
                anchored = self.anchor(feats[kept].float()) if bool(kept.any()) else emb[kept].detach()
            total = total + self.config.anchor_weight * relational_distillation_loss(
                emb[kept], anchored, temperature=temperature
            )
        return total
