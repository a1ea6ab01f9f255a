"""The one set of options choosing validation clips (audiosiam.data.splits.add_validation_arguments), shared by
scripts/fit_calibration.py, benchmarks/calibration_transfer.py and benchmarks/decisions.py."""

from __future__ import annotations

import argparse

import pytest

from audiosiam.data.splits import add_validation_arguments, validation_clips
from audiosiam.errors import ParameterError


def _parse(*argv):
    parser = argparse.ArgumentParser()
    add_validation_arguments(parser)
    return parser.parse_args(list(argv))


def test_defaults_take_every_row_with_speech():
    args = _parse()
    assert args.validation_sets is None and not args.no_validation_sets and not args.no_speech
    assert args.same_domain == [] and args.embeddings is None


def test_naming_rows_and_refusing_them_all_cannot_be_asked_at_once(capsys):
    assert _parse("--validation-sets", "game_foley", "animal_vocal").validation_sets == ["game_foley", "animal_vocal"]
    with pytest.raises(SystemExit):
        _parse("--validation-sets", "game_foley", "--no-validation-sets")
    assert "not allowed with" in capsys.readouterr().err


def test_a_same_domain_that_is_not_a_pair_is_named():
    with pytest.raises(ParameterError, match="--same-domain 'music': expected A=B"):
        validation_clips(_parse("--same-domain", "music", "--no-validation-sets"), {"validation_classes": []})


@pytest.mark.needs_shared_data
def test_rows_named_speech_left_out_and_domains_merged():
    info = {}  # no validation classes of its own: the rows alone
    named = validation_clips(_parse("--validation-sets", "body_percussion", "arabic_keywords"), info)
    assert set(named.domains) == {"body_percussion", "arabic_keywords"}
    assert [named.classes[i] for i in named.labels] == [it.label for it in named.items]
    every = validation_clips(_parse(), info)
    no_speech = validation_clips(_parse("--no-speech"), info)
    assert {"arabic_keywords", "arabic_speakers"} <= set(every.domains)
    assert not {"arabic_keywords", "arabic_speakers"} & set(no_speech.domains)
    merged = validation_clips(_parse("--no-speech", "--same-domain", "animal_vocal=game_foley"), info)
    assert "animal_vocal" not in merged.domains and merged.domains.count("game_foley") == len(
        [d for d in no_speech.domains if d in ("animal_vocal", "game_foley")]
    )
