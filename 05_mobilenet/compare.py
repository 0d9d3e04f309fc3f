"""Print the README's MobileNet V1 vs V2 table: parameters, mult-adds and measured CPU training-step time.

    python 05_mobilenet/compare.py --image-size 224 --batch-size 8 --threads 1
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from common.complexity import count_params_and_macs  # noqa: E402
from model import build_model  # noqa: E402

CONFIGS = [("mobilenet_v1", 1.0), ("mobilenet_v1", 0.5), ("mobilenet_v2", 1.0), ("mobilenet_v2", 0.5)]


def step_time(model: nn.Module, batch_size: int, image_size: int, rounds: int) -> float:
    """Median seconds of one SGD training step (forward, backward, update) after one warm-up step."""
    x, y = torch.randn(batch_size, 3, image_size, image_size), torch.randint(0, 1000, (batch_size,))
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    model.train()
    times = []
    for _ in range(rounds + 1):
        start = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()
        times.append(time.perf_counter() - start)
    return statistics.median(times[1:])


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    rows = []
    for name, width in CONFIGS:
        model = build_model(name, 1000, width_mult=width)
        cost = count_params_and_macs(model, args.image_size)
        seconds = step_time(model, args.batch_size, args.image_size, args.rounds)
        rows.append({"model": name, "width_mult": width, **cost, "step_s": seconds})
    print(f"CPU, {args.threads} thread(s), batch {args.batch_size}, {args.image_size}x{args.image_size}, "
          f"median of {args.rounds} training steps, torch {torch.__version__}")
    print(f"| model | α | parameters | mult-adds at {args.image_size} | step time (ms) |\n|---|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['model']} | {r['width_mult']} | {r['params'] / 1e6:.2f}M | {r['macs'] / 1e6:.0f}M | "
              f"{r['step_s'] * 1e3:.0f} |")
    return rows


if __name__ == "__main__":
    main()
