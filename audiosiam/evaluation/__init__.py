"""Evaluation of embeddings: few-shot episodes, verification, retrieval and open-set detection.

All functions take embeddings (N, D) (normalised here) and integer labels, so they serve any model. Use
``embed_dataset()`` to get them from a model and a dataset.

* Few-shot: N-way K-shot episodes over classes (the classes should be unseen in training), nearest
  prototype or k-NN, mean accuracy with a 95% confidence interval (1.96 standard errors over episodes).
  With ``groups`` (e.g. speakers), query clips never share a group with their episode's support clips
  (unless ``cross_group=False``); with ``query_groups`` only those groups' clips are queries, e.g. the
  speaker left out of training in a leave-one-speaker-out evaluation.
* Verification: all same/different pairs (or a seeded sample), cosine similarity as the score; equal
  error rate, the threshold at the EER, and the normalised minimum detection cost (NIST SRE:
  p_target=0.01, C_miss=C_fa=1).
* Retrieval: precision@1, R-precision and MAP@R (Musgrave et al., 2020), with each query's own clip
  excluded from the ranking, as pytorch-metric-learning's ``AccuracyCalculator`` computes them.
* Open set: AUROC of the best prototype similarity, known-class queries against clips of classes that
  were never enrolled.
* Calibration: how far :class:`~audiosiam.fewshot.FewShotClassifier`'s answers and probabilities (with
  ``unknown``) can be trusted, over seeded open-set episodes in which the classifier enrols and calibrates
  itself exactly as ``classify`` does, with the model's calibration map (:func:`calibration_metrics`).
"""

from .._deprecated import withdrawn_exports
from .calibration import calibration_metrics
from .few_shot import few_shot_accuracy, open_set_auroc
from .verification import retrieval_metrics, verification_metrics

__all__ = [
    "few_shot_accuracy",
    "verification_metrics",
    "retrieval_metrics",
    "open_set_auroc",
    "calibration_metrics",
]

# Exported before 0.1.0, internal (or elsewhere) now: still found here for one release, with a warning.
__getattr__ = withdrawn_exports(
    __name__,
    {
        "embed_dataset": "audiosiam.evaluation.embedding",
        "expected_calibration_error": "audiosiam.evaluation.calibration",
    },
)
