"""What a run prints: the machine, a table of the scenarios, their notes and problems."""

from __future__ import annotations

import os
import platform
from pathlib import Path

from .harness import Result


def machine() -> str:
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{model}, {os.cpu_count()} cores"


def print_table(results: list[Result]) -> None:
    header = ("fault", "ads sent", "decided", "lost", "duplicated", "5xx", "503", "retried",
              "replayed", "recover s")  # fmt: skip
    rows = [
        (r.fault, r.sent, r.decided, r.lost, r.duplicated, r.http_5xx, r.http_503, r.retried,
         r.replayed, "-" if r.recover_s is None else f"{r.recover_s:.1f}")
        for r in results
    ]  # fmt: skip
    widths = [max(len(str(x)) for x in column) for column in zip(header, *rows, strict=True)]
    for row in (header, *rows):
        print("  ".join(str(x).ljust(w) for x, w in zip(row, widths, strict=True)))
    for r in results:
        for note in r.notes:
            print(f"  {r.fault}: {note}")
        for problem in r.problems:
            print(f"  {r.fault}: BROKEN: {problem}")
