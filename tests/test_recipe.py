"""common/recipe.py and the loop's recipe flags: each flag changes what it should, by the amount the definition
gives, and every folder keeps the notes' recipe when no flag is passed."""
from __future__ import annotations

import argparse
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from common import cli, engine, recipe, runtime, schedule
from common.errors import UserError
from common.runtime import Runtime
from util import load

CLASSIFICATION = ["01_dataset", "02_tensorboard_transforms", "03_cifar_train", "05_mobilenet", "09_googlenet"]
SEGMENTATION = ["04_dilated_conv", "06_fcn", "07_deeplab"]


def parse(folder: str, *flags: str) -> argparse.Namespace:
    return load(folder, "train").get_args_parser().parse_args(list(flags))


def recipe_args(*flags: str, classification: bool = True, **defaults) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    cli.add_common_args(parser, folder="x", data_choices=("synthetic",), epochs=10, batch_size=2, lr=0.1)
    recipe.add_recipe_args(parser, classification=classification, **defaults)
    return parser.parse_args(list(flags))


# ------------------------------------------------------------------------------------------- defaults and flags
@pytest.mark.parametrize("folder, expected", [
    ("01_dataset", (0.9, 0.0, "constant")), ("02_tensorboard_transforms", (0.9, 5e-4, "cosine")),
    ("03_cifar_train", (0.0, 0.0, "constant")), ("05_mobilenet", (0.9, 4e-5, "cosine")),
    ("09_googlenet", (0.9, 1e-4, "cosine")), ("06_fcn", (0.9, 1e-4, "poly"))])
def test_no_flag_keeps_the_folders_own_recipe(folder, expected):
    args = parse(folder)
    assert (args.momentum, args.weight_decay, args.lr_scheduler) == expected and args.opt == "sgd"
    model = nn.Linear(2, 2)
    optimizer = recipe.build_optimizer(model.parameters(), args)
    assert type(optimizer) is torch.optim.SGD and optimizer.defaults["momentum"] == expected[0]
    assert optimizer.defaults["weight_decay"] == expected[1] and args.lr_warmup_epochs == (
        None if folder in SEGMENTATION else 0.0)


def test_every_train_py_has_the_recipe_flags_that_apply():
    shared = {"--opt", "--momentum", "--wd", "--weight-decay", "--lr-scheduler", "--lr-warmup-epochs",
              "--lr-warmup-method", "--model-ema", "--model-ema-decay", "--clip-grad-norm",
              "--use-deterministic-algorithms"}
    images = {"--label-smoothing", "--mixup-alpha", "--cutmix-alpha", "--auto-augment", "--random-erase"}
    for folder in CLASSIFICATION + SEGMENTATION:
        options = {s for a in load(folder, "train").get_args_parser()._actions for s in a.option_strings}
        assert shared <= options, folder
        assert (images <= options) == (folder in CLASSIFICATION) and not (folder in SEGMENTATION and images & options)


def test_segmentation_schedule_is_the_old_poly_curve_by_default():
    args = parse("06_fcn", "--epochs", "3")
    model = nn.Linear(2, 2)
    new = recipe.build_scheduler(torch.optim.SGD(model.parameters(), lr=1.0), args, steps_per_epoch=40)
    old = schedule.poly_lr(torch.optim.SGD(model.parameters(), lr=1.0), total_steps=120)
    assert [new.lr_lambdas[0](i) for i in range(121)] == [old.lr_lambdas[0](i) for i in range(121)]


def test_warmup_and_every_schedule_follow_their_formula():
    def factors(*flags, steps=1):
        args = recipe_args("--lr", "1", *flags)
        sched = recipe.build_scheduler(torch.optim.SGD(nn.Linear(1, 1).parameters(), lr=1.0), args, steps)
        return [sched.lr_lambdas[0](i) for i in range(args.epochs * steps)]

    linear = factors("--lr-scheduler", "cosine", "--lr-warmup-epochs", "2", "--lr-warmup-decay", "0.1")
    assert linear[:3] == pytest.approx([0.1, 0.55, 1.0])  # warmup 0.1 → 1 over 2 epochs, then cosine from 1
    assert linear[2:] == pytest.approx([0.5 * (1 + math.cos(math.pi * t / 8)) for t in range(8)])
    held = factors("--lr-warmup-epochs", "2", "--lr-warmup-method", "constant", "--lr-warmup-decay", "0.25")
    assert held[:3] == [0.25, 0.25, 1.0] and set(held[2:]) == {1.0}  # constant schedule after a constant warmup
    assert factors("--lr-scheduler", "step", "--lr-step-size", "3", "--lr-gamma", "0.5") == pytest.approx(
        [1, 1, 1, 0.5, 0.5, 0.5, 0.25, 0.25, 0.25, 0.125])
    assert factors("--lr-scheduler", "poly") == pytest.approx([(1 - t / 10) ** 0.9 for t in range(10)])
    per_step = factors("--lr-scheduler", "step", "--lr-step-size", "2", "--lr-warmup-epochs", "0.5", steps=4)
    assert per_step[:3] == pytest.approx([0.01, 0.505, 1.0]) and per_step[9:11] == pytest.approx([1.0, 0.1])


def test_adamw_and_bad_recipe_values():
    args = recipe_args("--opt", "adamw", "--wd", "0.05", "--lr", "0.003")
    optimizer = recipe.build_optimizer(nn.Linear(2, 2).parameters(), args)
    assert type(optimizer) is torch.optim.AdamW and optimizer.defaults["weight_decay"] == 0.05
    assert optimizer.defaults["lr"] == 0.003
    for flags, message in [(("--lr-warmup-epochs", "10"), "--lr-warmup-epochs 10 leaves no epoch of --epochs 10"),
                           (("--label-smoothing", "1"), r"--label-smoothing must be in \[0, 1\), got 1"),
                           (("--mixup-alpha", "-1"), "--mixup-alpha must be >= 0, got -1"),
                           (("--lr-warmup-decay", "0"), r"--lr-warmup-decay must be in \(0, 1\], got 0"),
                           (("--clip-grad-norm", "0"), "--clip-grad-norm must be positive, got 0.0"),
                           (("--model-ema-decay", "1"), r"--model-ema-decay must be in \(0, 1\), got 1.0"),
                           (("--lr-gamma", "0"), r"--lr-gamma must be > 0, got 0$"),
                           (("--lr-step-size", "0"), r"--lr-step-size must be >= 1, got 0")]:
        with pytest.raises(UserError, match=f"^{message}"):
            cli.check_args(recipe_args(*flags))


# ------------------------------------------------------------------------------------------- loss and batches
def test_label_smoothing_changes_the_loss_by_the_known_amount():
    torch.manual_seed(0)
    logits, target = torch.randn(5, 4), torch.tensor([0, 3, 1, 1, 2])
    eps = 0.2
    log_p = logits.log_softmax(1)
    expected = ((1 - eps) * F.nll_loss(log_p, target) + eps * (-log_p.mean(1)).mean()).item()
    assert recipe.build_criterion(recipe_args("--label-smoothing", str(eps)))(logits, target).item() == \
        pytest.approx(expected)
    assert recipe.build_criterion(recipe_args())(logits, target).item() == pytest.approx(F.cross_entropy(logits, target)
                                                                                          .item())
    loss = load("09_googlenet").GoogLeNetLoss(aux_weight=0.3, label_smoothing=eps)  # every head, the aux ones too
    aux = torch.randn(5, 4)
    smooth = nn.CrossEntropyLoss(label_smoothing=eps)
    assert loss((logits, aux, aux), target).item() == pytest.approx(
        (smooth(logits, target) + 0.6 * smooth(aux, target)).item())


def test_mixup_batches_are_convex_combinations_and_cutmix_pastes_boxes():
    torch.manual_seed(0)
    x, y = torch.rand(6, 3, 8, 8), torch.tensor([0, 1, 2, 0, 1, 2])
    assert recipe.mix_batches(recipe_args(), 3) is None
    mixed, soft = recipe.mix_batches(recipe_args("--mixup-alpha", "0.4"), 3)(x, y)
    lam = soft[0, y[0]].item()  # image 0 is λ·x0 + (1 − λ)·x5 (the batch rolled by one), labels alike
    assert 0 <= lam <= 1 and torch.allclose(mixed, lam * x + (1 - lam) * x.roll(1, 0), atol=1e-6)
    assert torch.allclose(soft, lam * F.one_hot(y, 3) + (1 - lam) * F.one_hot(y.roll(1, 0), 3))
    pasted, soft = recipe.mix_batches(recipe_args("--cutmix-alpha", "1.0"), 3)(x, y)
    from_self = (pasted == x).all(1)  # every pixel is either its own image's or the rolled neighbour's
    assert ((pasted == x.roll(1, 0)).all(1) | from_self).all()
    assert soft[0, y[0]].item() == pytest.approx(from_self[0].float().mean().item())  # label share = area share
    either = recipe.mix_batches(recipe_args("--mixup-alpha", "0.2", "--cutmix-alpha", "1.0"), 3)
    assert [type(t).__name__ for t in either.transforms] == ["MixUp", "CutMix"]


def test_image_augmentations_join_the_train_pipeline_or_are_refused():
    policy, erase = recipe.image_augmentations(recipe_args("--auto-augment", "ta_wide", "--random-erase", "0.25"))
    assert type(policy[0]).__name__ == "TrivialAugmentWide" and erase[0].p == 0.25
    assert type(recipe.image_augmentations(recipe_args("--auto-augment", "ra"))[0][0]).__name__ == "RandAugment"
    assert recipe.image_augmentations(recipe_args()) == ([], [])
    train_tf, eval_tf = load("02_tensorboard_transforms", "train").build_transforms(32, policy, erase)
    names = [type(t).__name__ for t in train_tf.transforms]
    assert names == ["Resize", "RandomCrop", "RandomHorizontalFlip", "TrivialAugmentWide", "ToTensor", "Normalize",
                     "RandomErasing"]
    assert "TrivialAugmentWide" not in [type(t).__name__ for t in eval_tf.transforms]
    with pytest.raises(UserError, match="--loader tensor augments whole batches on the device: add --loader dataloader"):
        load("03_cifar_train", "train").main(["--data", "synthetic", "--auto-augment", "ta_wide", "--synthetic-size", "8"])
    with pytest.raises(UserError, match="--data synthetic is held as one tensor on the device"):
        load("05_mobilenet", "train").main(["--data", "synthetic", "--random-erase", "0.5", "--synthetic-size", "8"])


# ------------------------------------------------------------------------------------------- the loop's flags
def one_epoch(model, batches, **kwargs):
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5, momentum=0.9)
    rt = Runtime(device=torch.device("cpu"))
    engine.train_one_epoch(model, nn.CrossEntropyLoss(), optimizer, batches, rt=rt, epoch=0,
                           scaler=torch.amp.GradScaler("cpu", enabled=False), **kwargs)
    return optimizer


def test_ema_weights_are_the_hand_computed_average_after_k_steps():
    torch.manual_seed(0)
    model, decay = nn.Linear(4, 3), 0.8
    batches = [(torch.randn(2, 4), torch.randint(0, 3, (2,))) for _ in range(5)]
    ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)
    seen = []
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5, momentum=0.9)
    optimizer.register_step_post_hook(lambda *_: seen.append(model.weight.detach().clone()))
    engine.train_one_epoch(model, nn.CrossEntropyLoss(), optimizer, batches, rt=Runtime(device=torch.device("cpu")),
                           epoch=0, scaler=torch.amp.GradScaler("cpu", enabled=False), ema=ema)
    average = seen[0]  # the first update copies the weights, every later one is decay·average + (1 − decay)·weights
    for weights in seen[1:]:
        average = decay * average + (1 - decay) * weights
    assert len(seen) == 5 and torch.allclose(ema.module.weight, average, atol=1e-6)
    assert not torch.allclose(ema.module.weight, model.weight)


def test_clip_grad_norm_bounds_the_total_norm():
    torch.manual_seed(0)
    batches = [(torch.randn(8, 4) * 50, torch.randint(0, 3, (8,)))]
    norms = []

    def record(optimizer, *_):
        grads = [p.grad for group in optimizer.param_groups for p in group["params"]]
        norms.append(torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads])).item())

    for clip in (None, 0.5):
        torch.manual_seed(1)
        model = nn.Linear(4, 3)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
        optimizer.register_step_pre_hook(record)
        engine.train_one_epoch(model, nn.CrossEntropyLoss(), optimizer, batches,
                               rt=Runtime(device=torch.device("cpu")), epoch=0,
                               scaler=torch.amp.GradScaler("cpu", enabled=False), clip_grad_norm=clip)
    assert norms[0] > 5 and norms[1] == pytest.approx(0.5, rel=1e-4)


def test_model_ema_is_what_is_scored_saved_and_resumed(tmp_path):
    from test_engine import Scripted, batches, make_args

    def fit(*flags, resume=None):
        torch.manual_seed(0)
        model = nn.Linear(4, 3)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        args = make_args(tmp_path, *flags)
        rt = Runtime(device=torch.device("cpu"), resume=torch.load(resume, weights_only=True) if resume else None)
        meta = engine.Meta(model_name="linear", class_names=["a", "b", "c"])
        engine.fit(model, nn.CrossEntropyLoss(), optimizer, batches(4), batches(3, seed=1), args=args, rt=rt,
                   metric=Scripted([0.1, 0.2, 0.3, 0.4]), meta=meta)
        return model, args.output_dir

    model, out = fit("--model-ema", "--model-ema-decay", "0.5", "--epochs", "2")
    last = torch.load(out / "last.pth", weights_only=True)
    assert torch.equal(last["train_model"]["weight"], model.weight.detach())  # the trained weights, for --resume
    assert not torch.equal(last["model"]["weight"], last["train_model"]["weight"]) and last["ema_updates"] == 8
    net = nn.Linear(4, 3)
    net.load_state_dict(last["model"])  # what predict.py and export.py load: the average, a plain state_dict
    fit("--model-ema", "--model-ema-decay", "0.5", "--epochs", "3", "--resume", str(out / "last.pth"),
        resume=out / "last.pth")
    assert torch.load(out / "last.pth", weights_only=True)["ema_updates"] == 12
    with pytest.raises(UserError, match=r"last.pth was trained with --model-ema; resume it the same way$"):
        fit("--epochs", "4", "--resume", str(out / "last.pth"), resume=out / "last.pth")


def test_deterministic_algorithms_follow_the_flag(tmp_path):
    try:
        runtime.setup(recipe_args("--use-deterministic-algorithms", "--output-dir", str(tmp_path / "a")))
        assert torch.are_deterministic_algorithms_enabled()
        runtime.setup(recipe_args("--output-dir", str(tmp_path / "b")))
        assert not torch.are_deterministic_algorithms_enabled()
    finally:
        torch.use_deterministic_algorithms(False)


def test_the_segmentation_warmup_is_one_percent_of_the_steps_at_least_one_and_never_all_of_them():
    """The seg recipe's default warmup (no --lr-warmup-epochs): ceil(1 % of the steps), at least 1 and at most
    total − 1, from 0.1 × lr; a 2-step run still warms up for its first step and trains its second at the full lr."""
    import argparse

    from torch import nn

    from common import cli, recipe

    for epochs, steps_per_epoch, warmup in ((2, 1, 1), (10, 100, 10)):
        parser = argparse.ArgumentParser()
        cli.add_common_args(parser, folder="x", data_choices=("synthetic",), epochs=epochs, batch_size=2, lr=0.1)
        recipe.add_recipe_args(parser, classification=False, momentum=0.9, weight_decay=1e-4, lr_scheduler="poly",
                               lr_warmup_epochs=None)
        args = parser.parse_args([])
        optimizer = torch.optim.SGD(nn.Linear(2, 2).parameters(), lr=args.lr)
        scheduler = recipe.build_scheduler(optimizer, args, steps_per_epoch=steps_per_epoch)
        lrs = []
        for _ in range(warmup + 1):
            lrs.append(optimizer.param_groups[0]["lr"])
            optimizer.step()
            scheduler.step()
        assert lrs[0] == pytest.approx(0.01) and lrs[warmup - 1] < 0.1 and lrs[warmup] == pytest.approx(0.1)
