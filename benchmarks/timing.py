"""What the benchmarks share: importing a topic folder's module, interleaved timing, the machine line, a markdown table.

The machine may be shared with other work, so every comparison runs its variants in the same process, alternating
A B C / C B A ... round after round, and reports medians: load that comes and goes hits every variant alike.

On a heavily shared CPU even that is not enough: a process that is descheduled mid-measurement (and, with several torch
threads, every parallel op that waits for a descheduled thread) turns sub-millisecond ops into 10-ms ones. `--clock cpu`
(with `--threads 1`) then times the CPU time this process actually used (`time.process_time`), which does not count time
spent waiting for a core. It ignores worker processes, so a benchmark that uses DataLoader workers times those rows by the
wall clock.
"""
from __future__ import annotations

import argparse
import datetime
import importlib.util
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import ModuleType

import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def load(folder: str, module: str) -> ModuleType:
    """Import `ROOT/folder/module.py` (folders start with digits); the folder's own `model.py` wins over any other."""
    sys.modules.pop("model", None)
    sys.path.insert(0, str(ROOT / folder))
    try:
        spec = importlib.util.spec_from_file_location(f"bench_{folder}_{module}", ROOT / folder / f"{module}.py")
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        return mod
    finally:
        sys.path.remove(str(ROOT / folder))


def sync() -> None:
    """Wait for queued GPU work, so a timer measures work done, not work launched (no-op without CUDA in use)."""
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()


CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}


def add_clock_args(parser: argparse.ArgumentParser) -> None:
    """--threads and --clock, which every CPU benchmark takes."""
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--clock", choices=tuple(CLOCKS), default="wall",
                        help="wall: elapsed time; cpu: this process's CPU time, robust on a shared machine "
                             "(use with --threads 1) (default: %(default)s)")


def apply_clock_args(args: argparse.Namespace) -> None:
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.clock == "cpu" and torch.get_num_threads() != 1:
        raise SystemExit("--clock cpu needs --threads 1 (spinning torch threads would count as work)")


def rate(fn: Callable[[], int], clock: str = "wall") -> float:
    """Items per second of one call of `fn`, which returns how many items it processed (GPU work included)."""
    now = CLOCKS[clock]
    sync()
    start = now()
    items = fn()
    sync()
    return items / max(now() - start, 1e-9)


def interleave(variants: dict[str, Callable[[], int]], rounds: int, warmup: int = 1,
               clock: str = "wall") -> dict[str, list[float]]:
    """Items/s of each variant per round; odd rounds run the variants in reverse order. `warmup` rounds are dropped."""
    names = list(variants)
    results: dict[str, list[float]] = {name: [] for name in names}
    for r in range(warmup + rounds):
        for name in (names if r % 2 == 0 else names[::-1]):
            value = rate(variants[name], clock)
            if r >= warmup:
                results[name].append(value)
    return results


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def paired_ratio(results: dict[str, list[float]], a: str, b: str) -> float:
    """Median over rounds of a/b measured in the same round (adjacent in time, so slow drift cancels)."""
    return statistics.median(x / y for x, y in zip(results[a], results[b]))


def ratio_range(results: dict[str, list[float]], a: str, b: str) -> str:
    """The smallest and largest per-round a/b, to show how much the rounds scatter."""
    ratios = [x / y for x, y in zip(results[a], results[b])]
    return f"{min(ratios):.3f}-{max(ratios):.3f}"


def machine() -> str:
    """One line saying where and when a table was measured."""
    cpu = platform.processor() or platform.machine()
    try:
        names = [line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                 if line.startswith("model name")]
        cpu = names[0] if names else cpu
    except OSError:
        pass
    load_avg = " ".join(f"{x:.1f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a"
    gpu = f", GPU {torch.cuda.get_device_name()}" if torch.cuda.is_available() else ", no GPU"
    return (f"{datetime.date.today()}, {cpu} ({os.cpu_count()} cores, torch threads {torch.get_num_threads()}, "
            f"load average {load_avg}){gpu}, torch {torch.__version__}, Python {platform.python_version()}")


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A markdown table; floats get 3 significant decimals or thousands separators."""
    def cell(value: object) -> str:
        if isinstance(value, float):
            return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3f}"
        return str(value)
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)
