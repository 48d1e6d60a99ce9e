"""The served forms of a backbone, and which runs fastest on this CPU.

The same network serves as full-integer int8 (shipped, calibrated on real photos) or as
float32 (built from the installed weights package). Which is faster depends on the CPU far
more than on the model: int8 wins where the CPU has AVX-512 VNNI (about 2.4 ms a photo for
Lite1), and loses to float32 on AVX2-only CPUs (Lite1 alone: int8 18.5 ms, float32 17.3 ms
on an AMD EPYC under load). So each process times them once, when it loads a model, on a
fixed synthetic photo, and keeps the fastest (``fastest``).
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import numpy as np

FORMS = ("int8", "float32")  # the first is the one every backbone has
# The self-benchmark: each form is warmed once, then timed in turns (so that another
# process's burst slows each about alike) until this many rounds or this many seconds.
ROUNDS = 7
BUDGET_SECONDS = 1.5


@dataclass(frozen=True)
class Cpu:
    model: str
    avx2: bool
    avx512_vnni: bool

    def __str__(self) -> str:
        flags = [name for name in ("avx2", "avx512_vnni") if getattr(self, name)]
        return f"{self.model} ({', '.join(flags) or 'neither avx2 nor avx512_vnni'})"


@cache
def this_cpu() -> Cpu:
    """The CPU's model name and the flags that decide between the forms (Linux)."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        lines = []
    model = next((ln.split(":", 1)[1].strip() for ln in lines if ln.startswith("model name")), "")
    flags = set(next((ln.split(":", 1)[1].split() for ln in lines if ln.startswith("flags")), []))
    return Cpu(model or "unknown", "avx2" in flags, "avx512_vnni" in flags)


@dataclass
class Choice:
    """The form a process serves, and why; ``ms``: each form's median milliseconds for one
    photo in the self-benchmark (empty when there was no choice to make)."""

    form: str
    ms: dict[str, float] = field(default_factory=dict)
    why: str = ""
    cpu: Cpu = field(default_factory=this_cpu)

    def summary(self) -> str:
        return f"serving the {self.form} backbone on {self.cpu}: {self.why}"


def fastest(run_of: dict, input_size: int, budget: float = BUDGET_SECONDS) -> Choice:
    """Times ``run_of[form](pixels)`` on one fixed synthetic photo and picks the fastest.

    Bounded: each form once to warm up (XNNPACK packs its weights on the first run), then
    rounds of one run each until ``ROUNDS`` or ``budget`` seconds."""
    pixels = np.random.default_rng(0).integers(0, 256, (1, input_size, input_size, 3), np.uint8)
    started = time.perf_counter()
    for run in run_of.values():
        run(pixels)
    times: dict[str, list[float]] = {form: [] for form in run_of}
    while len(times[next(iter(times))]) < ROUNDS:
        for form, run in run_of.items():
            begun = time.perf_counter()
            run(pixels)
            times[form].append((time.perf_counter() - begun) * 1000)
        if time.perf_counter() - started > budget:
            break
    ms = {form: round(statistics.median(values), 2) for form, values in times.items()}
    timed = ", ".join(f"{form} {value:.1f} ms" for form, value in ms.items())
    return Choice(min(ms, key=ms.get), ms, f"the fastest of {timed} (one photo, median)")
