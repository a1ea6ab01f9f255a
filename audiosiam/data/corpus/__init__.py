"""The training corpus of the bundled models: what it takes from Debian packages and ``../shared/data``
(:mod:`.catalogue`, data in ``catalogue.toml``) and how it is fetched, labelled, cleaned and split into
training and a held-out validation suite (:mod:`.builder`; ``python scripts/fetch_training_data.py``)."""
