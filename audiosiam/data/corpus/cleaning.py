"""Every clip decoded once, mixed to mono, resampled to 16 kHz, trimmed of silence, capped and written as FLAC;
unreadable, silent and too-short clips refused, and duplicates (exact and near) kept once (builder.py, step 3)."""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from audiosiam.data.corpus.catalogue import ADDED
from audiosiam.data.corpus.clips import Clip
from audiosiam.errors import AudiosiamError

RATE = 16000
MAX_SECONDS = 30.0
MIN_SOUND_SECONDS = 0.15
TRIM_DB = 40.0
NEAR_DUPLICATE_COSINE = 0.98


def _clean_one(job: tuple[str, str]) -> tuple[str, float, str, list[float] | None]:
    """Decode, mono, 16 kHz, trim, cap, write FLAC. Returns (out, seconds, content hash, fingerprint) or a reason."""
    import numpy as np
    import soundfile as sf
    import torch

    from audiosiam.functional import log_mel_spectrogram
    from audiosiam.io import load_audio

    src, out = job
    try:
        wave = load_audio(src, RATE, trim_silence=True, trim_db=TRIM_DB)
    except AudiosiamError as exc:
        return out, 0.0, f"refused: {exc}", None
    wave = wave[: int(MAX_SECONDS * RATE)]
    seconds = wave.numel() / RATE
    if seconds < MIN_SOUND_SECONDS:
        return out, seconds, "refused: under 0.15 s of sound", None
    peak = float(wave.abs().max())
    digest = hashlib.sha1(np.round(wave.numpy() / peak * 2**15).astype(np.int16).tobytes()).hexdigest()
    # time-aligned fingerprint: 16 mel bands x 48 time steps of the whole clip, dB, mean removed
    mel = log_mel_spectrogram(wave, RATE, n_mels=16, normalize=None)
    mel = torch.nn.functional.interpolate(mel[None], size=48, mode="linear", align_corners=False)[0]
    fingerprint = (mel - mel.mean()).flatten().tolist()
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    # a name no other process uses: a second writer of the same output must not rename our file away
    tmp = f"{out}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp.flac"
    sf.write(tmp, np.clip(wave.numpy(), -1.0, 1.0), RATE, subtype="PCM_16")
    Path(tmp).replace(out)
    return out, seconds, digest, fingerprint


def _one_thread() -> None:
    import torch

    torch.set_num_threads(1)  # one decoding process per core; more threads each would fight for them


class _InProcess:
    """The executor interface, run here (one worker: no processes to start)."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def map(self, fn, items, chunksize=1):
        return map(fn, items)


def clean(clips: list[Clip], cache: Path, workers: int = 2) -> dict[tuple[str, str], int]:
    """Clean every clip (cached by output path), drop refused ones and duplicates; returns the drops counted
    by (source, reason)."""
    import numpy as np

    corpus = cache / "corpus"
    jobs = []
    for c in clips:
        digest = hashlib.sha1(c.original.encode()).hexdigest()[:10]
        c.path = str(corpus / c.source / f"{Path(c.original).stem[:60]}_{digest}.flac")
        jobs.append((c.original, c.path))
    index_path = cache / "clean_index.json"
    index = json.loads(index_path.read_text()) if index_path.exists() else {}
    # one job per output: a catalogue can list one file twice (a drum kit naming a sample in two layers)
    unique = dict((out, (src, out)) for src, out in jobs)
    todo = [
        j
        for out, j in unique.items()
        if out not in index or (not index[out][1].startswith("refused") and not Path(out).exists())
    ]
    if todo:
        from tqdm import tqdm

        with ProcessPoolExecutor(workers, initializer=_one_thread) if workers > 1 else _InProcess() as pool:
            for out, seconds, digest, fingerprint in tqdm(
                pool.map(_clean_one, todo, chunksize=16), total=len(todo), desc="cleaning clips", unit="clip"
            ):
                index[out] = [seconds, digest, fingerprint]
        tmp = index_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(index))
        tmp.replace(index_path)
    drops = defaultdict(int)
    kept: list[Clip] = []
    seen: dict[str, Clip] = {}
    # held-out clips first, so that a duplicate pair spanning the split is removed from training; packages
    # added later after the first ones, so that their duplicates leave the earlier manifests as they were
    order = sorted(clips, key=lambda c: (not c.held_out, c.source in ADDED, c.source, c.original))
    for c in order:
        seconds, digest, fingerprint = index[c.path]
        if digest.startswith("refused"):
            drops[(c.source, "refused")] += 1
            continue
        if digest in seen:
            drops[(c.source, "exact duplicate")] += 1
            continue
        seen[digest] = c
        c.seconds = seconds
        kept.append(c)
    # near-duplicates: cosine of the time-aligned log-mel fingerprints, lengths within 2%
    prints = np.array([index[c.path][2] for c in kept], dtype=np.float32)
    prints /= np.linalg.norm(prints, axis=1, keepdims=True).clip(1e-9)
    lengths = np.array([c.seconds for c in kept])
    drop = np.zeros(len(kept), dtype=bool)
    for start in range(0, len(kept), 2048):
        sims = prints[start : start + 2048] @ prints.T
        for r, i in enumerate(range(start, min(start + 2048, len(kept)))):
            if drop[i]:
                continue
            earlier = np.nonzero(
                (sims[r, :i] >= NEAR_DUPLICATE_COSINE)
                & ~drop[:i]
                & (np.abs(lengths[:i] - lengths[i]) <= 0.02 * lengths[i])
            )[0]
            if len(earlier):
                drop[i] = True
    for c, d in zip(kept, drop):
        if d:
            drops[(c.source, "near duplicate")] += 1
    clips[:] = [c for c, d in zip(kept, drop) if not d]
    return dict(drops)
