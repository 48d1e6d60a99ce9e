"""Serving speed and memory of a model version's LiteRT form, decode and resize included.

    python bench/serving.py                 # the shipped default model
    python bench/serving.py --keras         # also time the Keras model, for comparison
    python bench/serving.py --model-dir DIR   # another model folder (build_default_model --out)
    python bench/serving.py --backbone B.tflite --heads H.npz   # a version retrained here
    python bench/serving.py --agreement ../shared/datasets/avito-phone-laptop/train

Prints the machine, then per batch size the median and p95 latency of
"bytes of JPEG thumbnails -> probabilities" (and none-of-these, from v4), and the process's
resident memory after loading the model. Never imports TensorFlow unless --keras is given
(the memory figure is taken before that).

A model served as backbone then heads (v4 on) is timed in each served form of its backbone
(``classifier/ml/serving_forms.py``): int8 as shipped, and float32, built from the weights
package in a child process (TensorFlow stays out of this one) and kept in var/bench/. The
"litert_*" figures are those of the form the workers' self-benchmark chooses on this CPU
(or of ``--form``). ``--agreement DIR`` compares the forms' answers on every photo of DIR.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from classifier.bootstrap import DEFAULT_MODEL_DIR  # noqa: E402
from classifier.ml.predict import Predictor  # noqa: E402
from classifier.ml.preprocess import preprocess  # noqa: E402
from classifier.ml.serving_forms import FORMS, fastest, this_cpu  # noqa: E402

DATA = ROOT.parent / "shared/datasets/avito-phone-laptop/train"
CACHE = ROOT / "var" / "bench"


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def machine() -> str:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}"


def sample_photos(n: int) -> list[bytes]:
    if DATA.is_dir():
        paths = sorted(DATA.glob("*/*.jpg"))[:: max(1, len(list(DATA.glob("*/*.jpg"))) // n)]
        return [p.read_bytes() for p in paths[:n]]
    from tests.support.images import jpeg_bytes  # a fresh machine: drawn photos instead

    return [jpeg_bytes("phone" if i % 2 else "laptop", i) for i in range(n)]


def timed(function, repeats: int) -> tuple[float, float]:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        times.append((time.perf_counter() - started) * 1000)
    times.sort()
    return statistics.median(times), times[int(0.95 * (len(times) - 1))]


def float32_form(backbone: str, input_size: int) -> bytes:
    """The backbone's float32 form, converted once in a child process (TensorFlow)."""
    path = CACHE / f"{backbone.replace('/', '-')}-float32.tflite"
    if not path.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        script = (
            "import sys; from pathlib import Path; "
            "from classifier.ml.export import backbone_float32_bytes as build; "
            "Path(sys.argv[3]).write_bytes(build(int(sys.argv[1]), sys.argv[2]))"
        )
        command = [sys.executable, "-c", script, str(input_size), backbone, str(path)]
        subprocess.run(command, cwd=ROOT, check=True, env=os.environ | {"PYTHONPATH": str(ROOT)})
    return path.read_bytes()


def latency(predictor, photos: list[bytes], size: int, repeats: int) -> dict:
    results = {}
    for batch in (1, 32):
        chosen = photos[:batch]

        def run(chosen=chosen):
            # Everything a worker gets: probabilities, and none-of-these where it can tell.
            return predictor.answers(np.stack([preprocess(p, size) for p in chosen]))

        run()
        p50, p95 = timed(run, repeats)
        results[f"litert_batch{batch}_ms"] = {"p50": round(p50, 3), "p95": round(p95, 3)}
    return results


def agreement(predictors: dict, folder: Path, size: int, threshold: float) -> dict:
    """The forms' answers on every photo of ``folder`` (class folders give accuracies)."""
    paths = sorted(p for p in folder.rglob("*") if p.suffix.lower() in {".jpg", ".jpeg", ".png"})
    answers = {form: [] for form in predictors}
    for start in range(0, len(paths), 64):
        pixels = np.stack([preprocess(p.read_bytes(), size) for p in paths[start : start + 64]])
        for form, predictor in predictors.items():
            got = predictor.answers(pixels)
            flags = got.none_of_these
            for index, row in enumerate(got.probabilities):
                best = int(row.argmax())
                alone = row[best] >= threshold and not (flags is not None and flags[index])
                answers[form].append((predictor.classes[best], alone))
    int8, float32 = answers["int8"], answers["float32"]
    labels = [p.parent.name for p in paths]

    def share(values) -> float:
        return round(sum(values) / len(paths), 4)

    return {
        "photos": len(paths),
        "same_class": share(a[0] == b[0] for a, b in zip(int8, float32, strict=True)),
        # The decision: the category alone, or a moderator's review.
        "same_decision": share(
            (a[0] if a[1] else None) == (b[0] if b[1] else None)
            for a, b in zip(int8, float32, strict=True)
        ),
        "decides_alone": {form: share(a[1] for a in got) for form, got in answers.items()},
        "accuracy": {
            form: share(a[0] == label for a, label in zip(got, labels, strict=True))
            for form, got in answers.items()
        },
        "errors_alone": {
            form: share(a[1] and a[0] != label for a, label in zip(got, labels, strict=True))
            for form, got in answers.items()
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model-dir", type=Path, default=DEFAULT_MODEL_DIR)
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--keras", action="store_true")
    parser.add_argument("--threads", type=int, default=1, help="LiteRT threads")
    parser.add_argument(
        "--backbone",
        type=Path,
        help="a stored int8 backbone (media/backbones/*.tflite), served with --heads",
    )
    parser.add_argument("--heads", type=Path, help="a retrained version's heads.npz")
    parser.add_argument(
        "--form", choices=("auto", *FORMS), default="auto", help="the backbone form served"
    )
    parser.add_argument("--agreement", type=Path, help="compare the forms on this folder")
    args = parser.parse_args()
    manifest = json.loads((args.model_dir / "manifest.json").read_text())
    size = manifest["input_size"]
    baseline = rss_mb()
    from classifier.ml.heads import Heads

    if args.backbone and args.heads:
        model, heads = args.backbone.read_bytes(), Heads(args.heads.read_bytes())
    elif (args.model_dir / "heads.npz").exists():  # v4 on: the int8 backbone, then the heads
        model = (args.model_dir / "backbone.tflite").read_bytes()
        heads = Heads((args.model_dir / "heads.npz").read_bytes())
    else:
        model, heads = (args.model_dir / "model.tflite").read_bytes(), None
    forms = {"int8": model}
    if heads is not None and not args.backbone:  # a shipped model: its backbone's id is known
        forms["float32"] = float32_form(manifest["backbone"], size)
    predictors = {
        form: Predictor(content, manifest["classes"], size, num_threads=args.threads, heads=heads)
        for form, content in forms.items()
    }
    choice = fastest({form: p.answers for form, p in predictors.items()}, size)
    chosen = choice.form if args.form == "auto" else args.form
    photos = sample_photos(64)
    served = f"{args.backbone} + {args.heads}" if args.heads else str(args.model_dir)
    cpu = this_cpu()
    results = {
        "machine": machine(),
        "cpu": {"model": cpu.model, "avx2": cpu.avx2, "avx512_vnni": cpu.avx512_vnni},
        "model": served,
        "litert_threads": args.threads,
        "self_benchmark_ms": choice.ms,
        "form": chosen,
        "form_chosen_by": "self-benchmark" if args.form == "auto" else "--form",
    }
    # The served form first: the memory figure is a worker's, before the others' batches.
    timings = {chosen: latency(predictors[chosen], photos, size, args.repeats)}
    results |= timings[chosen]
    results["rss_mb_before_model"] = round(baseline, 1)
    results["rss_mb_with_model_serving"] = round(rss_mb(), 1)
    for form, predictor in predictors.items():
        timings.setdefault(form, latency(predictor, photos, size, args.repeats))
    results["forms"] = timings if len(timings) > 1 else {}
    decode_p50, _ = timed(lambda: preprocess(photos[0], size), args.repeats)
    results["decode_resize_one_ms"] = round(decode_p50, 3)
    results["tensorflow_imported"] = "tensorflow" in sys.modules
    if args.agreement:
        if len(predictors) < 2:
            parser.error("--agreement needs a model served as backbone then heads (v4 on)")
        results["agreement"] = agreement(predictors, args.agreement, size, manifest["threshold"])

    if args.keras and heads is None:
        from classifier.ml.export import load_keras
        from classifier.ml.model import serving_model

        heads = load_keras((args.model_dir / "model.keras").read_bytes())
        # v1's .keras is the whole CNN; from v2 on it holds the heads over the backbone.
        model = heads if manifest.get("backbone") is None else serving_model(heads, size)
        for batch in (1, 32):
            pixels = np.stack([preprocess(p, size) for p in photos[:batch]]).astype("float32")
            model(pixels, training=False)
            p50, _ = timed(lambda pixels=pixels: model(pixels, training=False), 50)
            p50_predict, _ = timed(lambda pixels=pixels: model.predict(pixels, verbose=0), 20)
            results[f"keras_call_batch{batch}_ms"] = round(p50, 3)
            results[f"keras_predict_batch{batch}_ms"] = round(p50_predict, 3)
        results["rss_mb_with_tensorflow"] = round(rss_mb(), 1)

    for key, value in results.items():
        print(f"{key}: {value}")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
