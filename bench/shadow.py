"""What a version in shadow adds to each photo's inference.

    python bench/shadow.py                    # the newest shipped model served as backbone+heads
    python bench/shadow.py --model-dir DIR --repeats 200   # a folder build_default_model wrote

A version in shadow on the active version's served backbone answers from the backbone
features the active version's predictor has just computed: its cost is its heads and its
none-of-these detector (``services.classify_features``). A version on another backbone
runs its own backbone: about the active version's cost again. Times, per photo, the
active version (int8 backbone then heads, the photos already decoded) and the heads alone,
for an ad of 1 photo and of 10, and prints one JSON line. The database writes (one bulk
insert of the shadow's answers and one upsert of its would-be routing per ad) are not
included.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from bench.serving import machine, sample_photos, timed  # noqa: E402
from classifier.ml.heads import Heads  # noqa: E402
from classifier.ml.predict import Predictor  # noqa: E402
from classifier.ml.preprocess import preprocess  # noqa: E402

SHIPPED = ROOT / "classifier/default_model"


def newest_with_heads() -> Path:
    found = sorted(
        (d for d in SHIPPED.glob("v*") if (d / "heads.npz").exists()),
        key=lambda d: int(d.name[1:]),
    )
    if not found:
        raise SystemExit(f"no shipped model served as backbone then heads in {SHIPPED}")
    return found[-1]


def shadow_heads(heads: Heads, features: np.ndarray) -> None:
    """What the version in shadow computes per batch: probabilities and the detector."""
    heads.none_of_these_flags(features, heads.probabilities(features))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model-dir", type=Path, default=None)
    parser.add_argument("--repeats", type=int, default=100)
    parser.add_argument("--threads", type=int, default=1, help="LiteRT threads")
    args = parser.parse_args()
    model_dir = args.model_dir or newest_with_heads()
    manifest = json.loads((model_dir / "manifest.json").read_text())
    size = manifest["input_size"]
    heads = Heads(
        (model_dir / "heads.npz").read_bytes(),
        threshold=manifest["threshold"],
        backbone=manifest["backbone"],
        classes=manifest["classes"],
    )
    backbone = (model_dir / "backbone.tflite").read_bytes()
    predictor = Predictor(
        backbone, manifest["classes"], size, num_threads=args.threads, heads=heads
    )
    photos = sample_photos(10)
    results = {"machine": machine(), "model": str(model_dir.relative_to(ROOT))}
    for batch in (1, 10):
        pixels = np.stack([preprocess(p, size) for p in photos[:batch]])
        features = predictor.answers(pixels).features
        active, _ = timed(lambda pixels=pixels: predictor.answers(pixels), args.repeats)
        added, added_p95 = timed(
            lambda features=features: shadow_heads(heads, features), args.repeats * 10
        )
        results[f"ad_of_{batch}"] = {
            "active_ms_per_photo": round(active / batch, 3),
            "shadow_same_backbone_ms_per_photo": round(added / batch, 4),
            "shadow_same_backbone_p95_ms_per_photo": round(added_p95 / batch, 4),
            "shadow_other_backbone_ms_per_photo": round(active / batch, 3),
            "added_share_same_backbone": round(added / active, 4),
        }
    print(json.dumps(results))


if __name__ == "__main__":
    main()
