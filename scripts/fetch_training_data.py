#!/usr/bin/env python3
"""Assemble the training corpus of the bundled models and its held-out validation suite, reproducibly.

The builder is :mod:`audiosiam.data.corpus.builder` (what it does, step by step, is its docstring); what it
takes, labels and holds out is data, in ``audiosiam/data/corpus/catalogue.toml``.

    python scripts/fetch_training_data.py [--cache ~/.cache/audiosiam/training-data] [--shared-data ../shared/data]
                                          [--with-added] [--strict-held-out] [--kinds] [--workers 2]
"""

from audiosiam.data.corpus.builder import main

if __name__ == "__main__":
    raise SystemExit(main())
