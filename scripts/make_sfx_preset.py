"""Write the ``sfx`` preset (``audiosiam/assets/sfx.pt``): aiSFX as an audiosiam model, its weights named, not copied.

    python scripts/make_sfx_preset.py [--out audiosiam/assets/sfx.pt]
    python scripts/fit_calibration.py audiosiam/assets/sfx.pt --no-speech   # then its calibration map

The file holds the architecture, front end, length policy and ``info`` (attribution, licence, and what the
fitting scripts add later); the weights stay in the ``aisfx`` wheel (``requirements-nodeps.txt``) and are
read from it on load, checked by sha256 (:mod:`audiosiam.models.aisfx`). Rerunning the script keeps the
``info`` entries measured since (calibration, verification threshold).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from audiosiam._version import __version__
from audiosiam.models.aisfx import ATTRIBUTION, WEIGHTS_SHA256, AiSfxConfig, AiSfxEncoder, AiSfxFrontEnd, aisfx_weights
from audiosiam.models.checkpoint_file import FORMAT, FORMAT_VERSION, read_trusted, write_checkpoint_file
from audiosiam.models.embedding import EmbeddingModel

REPO = Path(__file__).resolve().parents[1]

# 100 frames of 1024 samples at 44.1 kHz (2.3 s), their embedding block, every 50 frames (their 50% hop);
# every shorter clip is padded to a whole block, as their blocking pads with silence
POLICY = dict(window_seconds=2.3, hop_seconds=51200 / 44100, min_seconds=2.3)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", type=Path, default=REPO / "audiosiam/assets/sfx.pt", help="default: %(default)s")
    p.add_argument("--pad", choices=("center", "end"), default="center", help="short clips' padding (%(default)s)")
    args = p.parse_args(argv)
    policy = {**POLICY, "pad": args.pad}
    frontend, encoder = AiSfxFrontEnd(), AiSfxEncoder(AiSfxConfig())
    EmbeddingModel(frontend, encoder, **policy)  # the policy is valid
    encoder.load_state_dict(aisfx_weights(sha256=WEIGHTS_SHA256))  # the weights it names load and fit
    info = {
        "name": "sfx",
        "attribution": ATTRIBUTION,
        "license": "CC BY 4.0 (https://creativecommons.org/licenses/by/4.0/)",
        "description": "aiSFX sound-effects embeddings (Ma and Lerch, ISMIR 2022), read from the aisfx 0.1.2 wheel",
    }
    if args.out.is_file():  # keep what was measured on it since
        kept = read_trusted(args.out, "audiosiam checkpoint", "delete it and run this script again")["info"]
        info = {**kept, **info}
    payload = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "audiosiam_version": __version__,
        "architecture": "aisfx",
        "frontend": frontend.config(),
        "encoder": encoder.config.to_dict(),
        "policy": policy,
        "weights_from": {"package": "aisfx", "sha256": WEIGHTS_SHA256},
        "info": info,
    }
    write_checkpoint_file(args.out, payload)
    size = args.out.stat().st_size
    print(f"{args.out}: written ({size} bytes; the weights are read from the aisfx package)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
