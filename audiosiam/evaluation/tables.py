"""The results of the metric functions as a readable table (``audiosiam evaluate``)."""

from __future__ import annotations


def format_table(results: dict) -> str:
    """A readable two-column table of a flat or one-level nested results dict.

    Args:
        results (dict): name -> value, or name -> dict of name -> value (a metric function's dict, or
            several under their names); floats are printed with 4 decimals.

    Returns:
        str: one line per value, nested entries indented under their name.
    """
    lines = []
    for name, value in results.items():
        if isinstance(value, dict):
            lines.append(f"{name}:")
            for key, v in value.items():
                if isinstance(v, list):  # a table of rows (e.g. reliability bins): in --format json
                    lines.append(f"  {key:<24} {len(v)} rows (see --format json)")
                else:
                    lines.append(f"  {key:<24} {v:.4f}" if isinstance(v, float) else f"  {key:<24} {v}")
        else:
            lines.append(f"{name:<26} {value:.4f}" if isinstance(value, float) else f"{name:<26} {value}")
    return "\n".join(lines)
