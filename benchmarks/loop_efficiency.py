"""Loop efficiency on the CPU: how close 03_cifar_train/train.py's training loop runs to a bare training loop.

Three loops train the notes' Tudui net (03_cifar_train/model.py) at batch 64 on CIFAR-sized synthetic images, in one process,
interleaved round by round (see timing.py):
- bare: the notes' four lines (forward, loss, zero_grad + backward, step) on one fixed batch already in memory: the ceiling;
- train.py: `engine.train_one_epoch` with the `TensorLoader` built by train.py's own `make_loaders` and flags (defaults),
  progress bar and TensorBoard writer included: what `python 03_cifar_train/train.py` runs per epoch;
- notes: the notes' 完整项目代码 loop: DataLoader(batch_size=64, shuffle=True, num_workers=0) over a ToTensor data set
  (one PIL image → tensor per sample), `loss.item()` + TensorBoard every 100 steps.
Efficiency = loop images/s ÷ bare images/s, median over rounds of the ratio within a round. Target for train.py: ≥ 0.95.
On a shared CPU the rounds scatter by ±15 %, more than the loops differ, so the loop's own cost is also measured directly:
the same three loops around a one-layer model (Flatten + Linear), minus that model's bare loop, per step. That cost against
Tudui's bare step time gives the efficiency the loop allows, with far less noise.

    python benchmarks/loop_efficiency.py                          # ~2 minutes on a 2-core CPU
    python benchmarks/loop_efficiency.py --threads 1 --clock cpu  # the same, robust when other jobs share the CPU
"""
from __future__ import annotations

import argparse
import copy
import tempfile

import torch
import torchvision
from torch import nn
from torch.utils.data import DataLoader
from torch.utils.tensorboard import SummaryWriter

from timing import (add_clock_args, apply_clock_args, interleave, load, machine, median, paired_ratio, ratio_range,
                    table)


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=10, help="Tudui steps per loop per round (default: %(default)s)")
    parser.add_argument("--rounds", type=int, default=31, help="timed rounds; medians are reported (default: %(default)s)")
    add_clock_args(parser)
    args = parser.parse_args(argv)
    apply_clock_args(args)
    train = load("03_cifar_train", "train")
    from common import engine, runtime

    with tempfile.TemporaryDirectory() as tmp:
        flags = train.get_args_parser().parse_args(
            ["--data", "synthetic", "--device", "cpu", "--output-dir", tmp, "--synthetic-size", str(64 * 50)])
        rt = runtime.setup(flags)
        train_set, test_set, _ = train.load_data(flags)
        train_loader, _ = train.make_loaders(train_set, test_set, flags, rt)
        images, targets = next(iter(train_loader))
        notes_set = copy.copy(train_set)
        notes_set.transform = torchvision.transforms.ToTensor()
        notes_loader = DataLoader(dataset=notes_set, batch_size=64, shuffle=True)
        writer = SummaryWriter(log_dir=tmp)
        criterion = nn.CrossEntropyLoss()
        batch = flags.batch_size

        def loops(model: nn.Module, steps: int) -> dict:
            """The three loops, `steps` training steps each, on `model` with one SGD optimizer."""
            optimizer = torch.optim.SGD(model.parameters(), lr=flags.lr)
            scaler = torch.amp.GradScaler(rt.device.type, enabled=False)  # what engine.fit builds on a CPU (no AMP)
            total_train_step = 0

            def bare() -> int:
                for _ in range(steps):
                    loss = criterion(model(images), targets)
                    optimizer.zero_grad()
                    loss.backward()
                    optimizer.step()
                return steps * batch

            def train_py() -> int:
                engine.train_one_epoch(model, criterion, optimizer, train_loader, rt=rt, epoch=0, scaler=scaler,
                                       print_freq=flags.print_freq, limit=steps, writer=writer)
                return steps * batch

            def notes() -> int:
                nonlocal total_train_step
                for step, (imgs, tgts) in enumerate(notes_loader):
                    if step == steps:
                        break
                    outputs = model(imgs)
                    loss = criterion(outputs, tgts)
                    optimizer.zero_grad()
                    loss.backward()
                    optimizer.step()
                    total_train_step += 1
                    if total_train_step % 100 == 0:
                        writer.add_scalar("train_loss", loss.item(), total_train_step)
                return steps * batch

            return {"bare": bare, "train.py": train_py, "notes": notes}

        tudui = interleave(loops(train.build_model(flags.model, num_classes=10), args.steps), args.rounds,
                           clock=args.clock)
        # the same loops around a one-layer model: what is left per step is the loop's own cost, free of model noise
        tiny = interleave(loops(nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, 10)), 50), args.rounds // 2 + 1,
                          clock=args.clock)
        writer.close()

    step_ms = {name: 1e3 * batch / median(rates) for name, rates in tudui.items()}
    cost_ms = {name: 1e3 * batch / median(rates) - 1e3 * batch / median(tiny["bare"]) for name, rates in tiny.items()}
    rows = [(label, median(tudui[name]), paired_ratio(tudui, name, "bare"), ratio_range(tudui, name, "bare"),
             f"{cost_ms[name]:.2f}", f"{step_ms['bare'] / (step_ms['bare'] + cost_ms[name]):.3f}", target)
            for name, label, target in (
                ("bare", "bare forward/backward/step, one fixed batch", "ceiling"),
                ("train.py", "03_cifar_train/train.py loop (engine + TensorLoader)", ">= 0.95"),
                ("notes", "notes' loop (DataLoader + ToTensor, num_workers 0)", "-"))]
    print(f"Loop efficiency, Tudui, batch {batch}, CPU, {args.steps} steps x {args.rounds} interleaved rounds (median), "
          f"{args.clock} clock; loop cost: the same loops around a 1-layer model, minus its bare loop")
    print(machine())
    print(table(["loop", "Tudui images/s", "÷ bare (median)", "÷ bare, range over rounds", "loop cost per step (ms)",
                 "÷ bare implied by the loop cost", "target"], rows))
    return {"train.py": rows[1][2], "notes": rows[2][2], "train.py implied": float(rows[1][5]),
            "notes implied": float(rows[2][5])}


if __name__ == "__main__":
    main()
