"""common/schedule.py: closed-form LR schedules, and every folder's schedule after a --resume with a larger --epochs."""
import math
from pathlib import Path

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import SCALARS, EventAccumulator
from torch import nn

from common import schedule
from common.errors import UserError
from util import FOLDERS, load


def lrs_of(scheduler: torch.optim.lr_scheduler.LRScheduler, steps: int) -> list[float]:
    optimizer = scheduler.optimizer
    out = []
    for _ in range(steps):
        out.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return out


def sgd(lr: float = 1.0) -> torch.optim.SGD:
    return torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=lr)


def test_poly_lr_warms_up_then_decays_to_zero() -> None:
    scheduler = schedule.poly_lr(sgd(), total_steps=100, warmup_steps=10)
    lrs = lrs_of(scheduler, 100)
    assert lrs[0] == pytest.approx(0.1) and lrs[5] == pytest.approx(0.1 + 0.9 * 5 / 10) and lrs[10] == pytest.approx(1)
    assert all(a < b for a, b in zip(lrs[:10], lrs[1:11])) and all(a > b for a, b in zip(lrs[10:], lrs[11:]))
    assert lrs[55] == pytest.approx((1 - 45 / 90) ** 0.9)
    assert lrs[-1] > 0 and scheduler.optimizer.param_groups[0]["lr"] == 0.0  # 0 only after the last step
    assert schedule.poly_factor(60, 100, warmup_steps=10, power=2.0) == pytest.approx((1 - 50 / 90) ** 2)
    assert schedule.poly_factor(0, 100, warmup_steps=10, warmup_start=0.5) == 0.5
    with pytest.raises(ValueError):
        schedule.poly_lr(sgd(), total_steps=5, warmup_steps=5)


def test_poly_lr_default_warmup_is_one_percent() -> None:
    lrs = lrs_of(schedule.poly_lr(sgd(), total_steps=300), 5)
    assert lrs[:4] == pytest.approx([0.1, 0.4, 0.7, 1.0])  # ceil(1% of 300) = 3 warmup steps


def test_poly_defaults_and_errors() -> None:
    assert schedule.poly_factor(50, 100) == pytest.approx(0.5 ** 0.9)  # no warmup, power 0.9 by default
    lrs = lrs_of(schedule.poly_lr(sgd(), 100, power=2.0), 3)
    assert lrs == pytest.approx([0.1, 1.0, (1 - 1 / 99) ** 2])  # ceil(1% of 100) = 1 warmup step; power reaches it
    with pytest.raises(ValueError, match=r"^need total_steps >= 1 and 0 <= warmup_steps < total_steps, got 5, 5$"):
        schedule.poly_lr(sgd(), total_steps=5, warmup_steps=5)


def test_cosine_equals_torchs_cosine_annealing_on_a_fixed_length() -> None:
    ours = lrs_of(schedule.cosine_lr(sgd(0.01), 7), 7)
    reference = lrs_of(torch.optim.lr_scheduler.CosineAnnealingLR(sgd(0.01), T_max=7), 7)
    assert ours == pytest.approx(reference, abs=1e-12)
    assert ours[0] == 0.01 and ours[-1] > 0 and schedule.cosine_factor(7, 7) == pytest.approx(0)
    assert schedule.cosine_factor(3, 12) == pytest.approx((1 + math.cos(math.pi / 4)) / 2)
    with pytest.raises(ValueError):
        schedule.cosine_lr(sgd(), 0)


def test_move_to_sets_position_and_the_optimizers_lr_from_the_current_curve() -> None:
    optimizer = torch.optim.SGD([{"params": [nn.Parameter(torch.zeros(1))], "lr": 1.0},
                                 {"params": [nn.Parameter(torch.zeros(1))], "lr": 0.1}], lr=1.0)
    scheduler = schedule.cosine_lr(optimizer, 4)
    schedule.resume(scheduler, state={"T_max": 1}, position=2, same_length=False)
    assert [g["lr"] for g in optimizer.param_groups] == pytest.approx([0.5, 0.05])
    assert scheduler.last_epoch == 2 and scheduler.get_last_lr() == pytest.approx([0.5, 0.05])
    scheduler.step()
    assert optimizer.param_groups[0]["lr"] == pytest.approx(schedule.cosine_factor(3, 4))


def test_a_scheduler_that_stores_its_length_refuses_a_changed_length() -> None:
    old = torch.optim.lr_scheduler.CosineAnnealingLR(sgd(), T_max=1)
    old.step()
    new = torch.optim.lr_scheduler.CosineAnnealingLR(sgd(), T_max=4)
    with pytest.raises(UserError, match=r"^CosineAnnealingLR stores its length in the checkpoint and cannot follow a "
                                        r"changed --epochs / steps per epoch; resume with the original flags, or use a "
                                        r"schedule from common/schedule.py$"):
        schedule.resume(new, old.state_dict(), position=1, same_length=False)
    schedule.resume(new, old.state_dict(), position=1, same_length=True)
    assert new.last_epoch == 1 and new.T_max == 1  # restored exactly as saved


# Each folder's smallest run; `--print-freq 1` logs the LR of every step.
TINY = {
    "01_dataset": ["--data", "synthetic", "--synthetic-size", "16", "-b", "8"],
    "02_tensorboard_transforms": ["--data", "synthetic", "--synthetic-size", "32", "-b", "16"],
    "03_cifar_train": ["--data", "synthetic", "--synthetic-size", "64", "-b", "32"],
    "04_dilated_conv": ["--model", "gridding", "--width", "8", "--groups", "1", "--synthetic-size", "8", "-b", "4",
                        "--crop-size", "32"],
    "05_mobilenet": ["--data", "synthetic", "--synthetic-size", "32", "-b", "16", "--width-mult", "0.25"],
    "06_fcn": ["--data", "synthetic", "--backbone", "light", "--synthetic-size", "8", "-b", "4", "--crop-size", "32"],
    "07_deeplab": ["--data", "synthetic", "--model", "deeplabv3plus", "--backbone", "resnet18", "--synthetic-size",
                   "4", "-b", "2", "--crop-size", "32"],
    "08_transfer": ["--method", "scratch", "--shots", "4", "--val-per-class", "2", "-b", "8"],
    "09_googlenet": ["--data", "synthetic", "--synthetic-size", "32", "-b", "16"],
}


def logged_lrs(folder: Path) -> dict[int, float]:
    acc = EventAccumulator(str(folder), size_guidance={SCALARS: 0}).Reload()
    return {e.step: e.value for e in acc.Scalars("lr")}


def test_every_folder_has_a_tiny_run() -> None:
    assert sorted(TINY) == FOLDERS


@pytest.mark.parametrize("folder", FOLDERS)
def test_resume_with_more_epochs_follows_the_longer_runs_curve(folder: str, tmp_path: Path) -> None:
    """The README's `--resume last.pth --epochs N`: after the resume every step gets the LR that a fresh run with the
    new --epochs gives it (not the old curve's 0, not a restart), and no step before the last trains at LR 0."""
    train = load(folder, "train")
    args = [*TINY[folder], "--print-freq", "1", "--seed", "0"]
    train.main([*args, "--epochs", "3", "--output-dir", str(tmp_path / "fresh")])
    train.main([*args, "--epochs", "1", "--output-dir", str(tmp_path / "resumed")])
    first_epoch = max(logged_lrs(tmp_path / "resumed"))
    train.main([*args, "--epochs", "3", "--output-dir", str(tmp_path / "resumed"),
                "--resume", str(tmp_path / "resumed" / "last.pth")])
    fresh, resumed = logged_lrs(tmp_path / "fresh"), logged_lrs(tmp_path / "resumed")
    assert sorted(fresh) == sorted(resumed) and len(fresh) >= 3
    later = [step for step in sorted(fresh) if step > first_epoch]
    assert [resumed[s] for s in later] == pytest.approx([fresh[s] for s in later], rel=1e-6)
    assert min(fresh.values()) > 0
