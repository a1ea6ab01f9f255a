"""Print a pytest-benchmark JSON file as a Markdown table: test, median, min, max and extra info.

Run:  python benchmarks/summarize.py results.json [more.json ...]
Used to copy measured numbers into RESULTS.md without retyping them.
"""

from __future__ import annotations

import json
import sys


def table(path: str) -> str:
    data = json.load(open(path))
    machine = data.get("machine_info", {})
    lines = [
        f"<!-- {path}: {machine.get('cpu', {}).get('brand_raw', '?')}, {machine.get('cpu', {}).get('count', '?')} "
        f"cores, {data.get('datetime', '?')} -->",
        "| test | median ms | min ms | max ms | extra |",
        "|---|---:|---:|---:|---|",
    ]
    for bench in data["benchmarks"]:
        s = bench["stats"]
        extra = ", ".join(
            f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in bench["extra_info"].items()
        )
        lines.append(
            f"| {bench['name']} | {s['median'] * 1e3:.2f} | {s['min'] * 1e3:.2f} | {s['max'] * 1e3:.2f} | {extra} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    for p in sys.argv[1:]:
        print(table(p), end="\n\n")
