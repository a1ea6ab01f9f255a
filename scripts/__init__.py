"""The maintainers' scripts (corpus, calibration, int8 ranges, the sfx preset), importable by tests as
``scripts.<name>``; each runs as ``python scripts/<name>.py``."""
