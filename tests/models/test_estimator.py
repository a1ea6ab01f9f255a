"""AudioEmbedder keeps scikit-learn's estimator contract: the checks of ``sklearn.utils.estimator_checks``
that apply to a transformer whose inputs are clips (not rows of features) and which learns nothing.

``check_estimator`` itself skips nearly everything here, as the tags tell it (no 2-D feature arrays), so the
contract's checks are called one by one. Left out on purpose: the checks that feed feature rows and expect
them validated in ``fit`` (NaN, empty columns, a different number of features at ``transform``): ``fit``
learns nothing from the clips and does not decode them; ``transform`` checks each clip as ``embed`` does."""

from __future__ import annotations

import numpy as np
import pytest
import sklearn.utils.estimator_checks as checks
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

from audiosiam.errors import ParameterError
from audiosiam.models.estimator import AudioEmbedder

from audio_fixtures import sine

CONTRACT = [
    "check_no_attributes_set_in_init",
    "check_parameters_default_constructible",
    "check_get_params_invariance",
    "check_set_params",
    "check_dont_overwrite_parameters",
    "check_estimators_overwrite_params",
    "check_transformers_unfitted",
    "check_estimators_unfitted",
    "check_fit_check_is_fitted",
    "check_estimator_repr",
    "check_estimator_cloneable",
]


@pytest.mark.parametrize("check", CONTRACT)
def test_the_estimator_contract(check):
    getattr(checks, check)("AudioEmbedder", AudioEmbedder(sample_rate=16000))


def test_fit_chooses_a_model_without_changing_its_parameters():
    embedder = AudioEmbedder("default", sample_rate=16000)
    clips = [sine(440, 1.0), sine(880, 1.0)]
    with pytest.raises(NotFittedError):
        embedder.transform(clips)
    out = embedder.fit_transform(clips)
    assert embedder.model == "default" and embedder.model_.embedding_dim == out.shape[1] == embedder.n_features_out_
    assert out.dtype == np.float32 and np.allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)
    copy = clone(embedder)
    assert copy.get_params() == embedder.get_params() and not hasattr(copy, "model_")
    for bad in ([], "one.wav", 3):
        with pytest.raises(ParameterError, match="X: "):
            AudioEmbedder(sample_rate=16000).fit(bad)
