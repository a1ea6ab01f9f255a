"""The benchmark suites (``bench_*.py``, run by pytest-benchmark) and the measurement protocols
(``generality``, ``calibration_transfer``, ``decisions``, ...: scripts that tests import as modules)."""
