"""Relational distillation: a student's embeddings taught how the clips of a batch relate, by a teacher.

The student need not share the teacher's space (aiSFX's 512-d embeddings are non-negative, their cosines lie
in about [0.6, 1]; audiosiam's 192-d ones spread over [-1, 1]), so what is matched is each clip's *ranking* of
the other clips of the batch, not the similarities themselves (regressing them, the probe of issue 30, made
the student worse): per row, the cosine similarities to the other clips are standardised (mean 0, standard
deviation 1) for student and teacher alike, turned into a distribution by a softmax at ``temperature``, and
the student's distribution is pulled to the teacher's by the Kullback-Leibler divergence (relational knowledge
distillation, Park et al., CVPR 2019; the softmax form as in Tung and Mori's similarity-preserving
distillation, ICCV 2019).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..errors import ParameterError


def _standardised_similarities(x: torch.Tensor) -> torch.Tensor:
    """(N, D) -> (N, N - 1): each row's cosine similarities to the other rows, standardised per row."""
    x = F.normalize(x.float(), dim=1)
    sims = x @ x.T
    n = sims.shape[0]
    off = ~torch.eye(n, dtype=torch.bool, device=sims.device)
    rows = sims[off].view(n, n - 1)
    mean = rows.mean(dim=1, keepdim=True)
    std = rows.std(dim=1, keepdim=True, unbiased=False).clamp_min(1e-6)
    return (rows - mean) / std


def relational_distillation_loss(
    student: torch.Tensor, teacher: torch.Tensor, *, temperature: float = 0.5
) -> torch.Tensor:
    """How far the student's ranking of a batch's clips is from the teacher's (module docstring).

    Args:
        student (Tensor): (N, D_s) the student's embeddings (any norm; normalised here), differentiable.
        teacher (Tensor): (N, D_t) the teacher's embeddings of the same clips, in the same order (no
            gradient flows into them).
        temperature (float, optional): softmax temperature over the standardised similarities (> 0); lower
            sharpens both distributions towards each clip's nearest neighbours. Default: ``0.5``.

    Returns:
        Tensor: scalar, the mean over rows of KL(teacher row || student row), >= 0; exactly 0 (still
        attached to ``student``) for fewer than 3 rows, where a ranking has less than two entries.

    Raises:
        ParameterError: shapes that are not (N, D) with the same N, or a temperature that is not positive.
    """
    if student.ndim != 2 or teacher.ndim != 2 or student.shape[0] != teacher.shape[0]:
        raise ParameterError(
            f"student {tuple(student.shape)}, teacher {tuple(teacher.shape)}: expected (N, D_s) and (N, D_t)"
        )
    if not temperature > 0:
        raise ParameterError(f"temperature={temperature}: must be > 0")
    if student.shape[0] < 3:
        return student.sum() * 0.0
    with torch.no_grad():
        target = F.softmax(_standardised_similarities(teacher.detach()) / temperature, dim=1)
    log_student = F.log_softmax(_standardised_similarities(student) / temperature, dim=1)
    return F.kl_div(log_student, target, reduction="batchmean")
