"""Compute (or rebuild) the teacher embeddings a distillation run reads, for every clip of a recipe's sources.

    python scripts/teacher_cache.py RECIPE.json [--teacher sfx] [--sources NAME,NAME] [--rebuild] [--cache DIR]

``audiosiam train --teacher`` fills the same cache itself (what is missing, before the first step); this
command does it ahead of a run, or from nothing with ``--rebuild`` (the teacher's entries deleted first).
Entries are keyed by each file's content and the teacher's identity (:mod:`audiosiam.data.teacher_cache`).
"""

from __future__ import annotations

import argparse
import sys
import time

from audiosiam.data import load_sources
from audiosiam.data.sources import source_items
from audiosiam.data.teacher_cache import TeacherCache
from audiosiam.errors import AudiosiamError
from audiosiam.models import load_model


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("recipe", help="a recipe (.json), manifest or class folder, as `audiosiam train` reads")
    p.add_argument("--teacher", default="sfx", help="the teacher model (default: %(default)s)")
    p.add_argument("--sources", help="only these sources (names, comma-separated; default: all)")
    p.add_argument("--cache", help="cache root (default: $AUDIOSIAM_TEACHER_CACHE or ~/.cache/audiosiam/teacher)")
    p.add_argument("--rebuild", action="store_true", help="delete this teacher's entries first")
    args = p.parse_args(argv)
    try:
        labelled, unlabelled, _ = load_sources([args.recipe])
        wanted = set(args.sources.split(",")) if args.sources else None
        items = source_items(labelled, unlabelled, copies=1)
        paths = sorted({it.path for it in items if wanted is None or it.source in wanted})
        cache = TeacherCache(load_model(args.teacher), args.cache)
        if args.rebuild:
            cache.clear()
        t0 = time.time()
        cache.embeddings(paths, progress=True)
    except AudiosiamError as exc:
        print(f"teacher_cache: {exc}", file=sys.stderr)
        return 1
    print(
        f"{len(paths)} clips: {cache.computed} embedded in {time.time() - t0:.0f} s, the rest read; {cache.folder}",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
