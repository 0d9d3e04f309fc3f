"""Learning-rate schedules as closed-form multipliers of the position, so a `--resume` can change `--epochs`.

A schedule here is a `LambdaLR` whose factor is a pure function of (position, total): the total comes from the current
command line and only the position comes from the checkpoint (`engine.fit` sets it from the finished epochs). Resuming
with the same flags therefore continues exactly, and resuming with a larger `--epochs` continues on the curve a fresh run
with the new `--epochs` would follow: no restart at the initial LR, no LR of 0 before the last step.

torch's `CosineAnnealingLR` cannot do this: its `T_max` is restored from the checkpoint (a 1-epoch run resumed to 4
epochs trains at LR 0.01, 0.0, 0.01, 0.0) and its recursive form depends on the LR it last set.
"""
from __future__ import annotations

import functools
import math

import torch
from torch.optim.lr_scheduler import LambdaLR, LRScheduler

from .errors import UserError


def cosine_factor(step: int, total_steps: int) -> float:
    """Cosine annealing from 1 at step 0 to 0 at `total_steps` (SGDR without restarts, eta_min = 0)."""
    return 0.5 * (1 + math.cos(math.pi * min(step, total_steps) / total_steps))


def poly_factor(step: int, total_steps: int, warmup_steps: int = 0, power: float = 0.9,
                warmup_start: float = 0.1) -> float:
    """Linear warmup from `warmup_start` to 1 over `warmup_steps`, then DeepLab's "poly" decay (1 − t / T)^power down
    to 0 at `total_steps` (t, T counted after the warmup)."""
    return lr_factor(step, total_steps, "poly", warmup_steps, "linear", warmup_start, power=power)


SCHEDULES = ("cosine", "step", "poly", "constant")  # --lr-scheduler (common/recipe.py)
WARMUP_METHODS = ("linear", "constant")


def lr_factor(step: int, total_steps: int, kind: str, warmup_steps: int = 0, warmup_method: str = "linear",
              warmup_decay: float = 0.01, step_size: int = 1, gamma: float = 0.1, power: float = 0.9) -> float:
    """The LR multiplier at `step` of `total_steps`: `warmup_steps` of warmup from `warmup_decay` (linear: rising to 1;
    constant: held at it, torchvision's LinearLR / ConstantLR), then `kind` over the remaining steps, counted from the
    warmup's end: cosine to 0, poly (1 − t/T)^power, step (× gamma every `step_size` steps) or constant 1."""
    if step < warmup_steps:
        return warmup_decay if warmup_method == "constant" else warmup_decay + (1 - warmup_decay) * step / warmup_steps
    t, span = step - warmup_steps, total_steps - warmup_steps
    if kind == "cosine":
        return cosine_factor(t, span)
    if kind == "poly":
        return max(0.0, 1 - t / span) ** power
    if kind == "step":
        return gamma ** (t // step_size)
    if kind == "constant":
        return 1.0
    raise ValueError(f"unknown schedule {kind!r}; choose from {SCHEDULES}")


def cosine_lr(optimizer: torch.optim.Optimizer, total_steps: int) -> LambdaLR:
    """Cosine annealing over `total_steps` scheduler steps (the classification folders: one step per epoch)."""
    if total_steps < 1:
        raise ValueError(f"need total_steps >= 1, got {total_steps}")
    return LambdaLR(optimizer, functools.partial(cosine_factor, total_steps=total_steps))


def poly_lr(optimizer: torch.optim.Optimizer, total_steps: int, warmup_steps: int | None = None,
            power: float = 0.9) -> LambdaLR:
    """Poly LR with a short warmup (default: 1 % of the steps, at least 1 when there is room); step it every iteration
    (`engine.fit(..., scheduler_interval="step")`)."""
    if warmup_steps is None:
        warmup_steps = min(max(1, math.ceil(0.01 * total_steps)), total_steps - 1)
    if total_steps < 1 or not 0 <= warmup_steps < total_steps:
        raise ValueError(f"need total_steps >= 1 and 0 <= warmup_steps < total_steps, got {total_steps}, {warmup_steps}")
    return LambdaLR(optimizer, functools.partial(poly_factor, total_steps=total_steps, warmup_steps=warmup_steps,
                                                 power=power))


def move_to(scheduler: LambdaLR, position: int) -> None:
    """Put a closed-form schedule at `position` steps and give the optimizer the LR of that position (the curve and
    the base LRs are the scheduler's own, i.e. the current flags')."""
    scheduler.last_epoch = position
    lrs = [base * factor(position) for base, factor in zip(scheduler.base_lrs, scheduler.lr_lambdas)]
    for group, lr in zip(scheduler.optimizer.param_groups, lrs):
        group["lr"] = lr
    scheduler._last_lr = lrs


def resume(scheduler: LRScheduler, state: dict | None, position: int, same_length: bool) -> None:
    """Continue `scheduler` after `position` finished steps of a resumed run.

    A `LambdaLR` (every schedule in this repo) is moved to `position` on its own curve. Any other scheduler keeps state
    that a changed run length would contradict (e.g. `CosineAnnealingLR.T_max`), so it is restored as saved, and only
    when the run length is unchanged (`same_length`); otherwise that is a `UserError`.
    """
    if isinstance(scheduler, LambdaLR):
        move_to(scheduler, position)
        return
    if not same_length:
        raise UserError(f"{type(scheduler).__name__} stores its length in the checkpoint and cannot follow a changed "
                        "--epochs / steps per epoch; resume with the original flags, or use a schedule from "
                        "common/schedule.py")
    if state is not None:
        scheduler.load_state_dict(state)
