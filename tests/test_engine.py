"""common/engine.py with a scripted metric: which epoch best.pth holds, what the checkpoint and TensorBoard carry, how the
scheduler is stepped, the per-image mean test loss, and the train loss logged per --print-freq window."""
import argparse
import copy
from pathlib import Path

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import SCALARS, EventAccumulator
from torch import nn

from common import cli, engine
from common.errors import UserError
from common.runtime import Runtime


class Scripted:
    """A metric whose primary value per evaluation is given in advance (best.pth must follow it)."""

    primary = "score"

    def __init__(self, scores: list[float]) -> None:
        self.scores, self.calls = list(scores), 0

    def reset(self) -> None:
        pass

    def update(self, output: torch.Tensor, target: torch.Tensor) -> None:
        pass

    def reduce(self) -> None:
        pass

    def compute(self) -> dict[str, float]:
        self.calls += 1
        return {"score": self.scores[self.calls - 1]}


def make_args(tmp_path: Path, *extra: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    cli.add_common_args(parser, folder="x", data_choices=("synthetic",), epochs=3, batch_size=2, lr=0.1)
    return parser.parse_args(["--output-dir", str(tmp_path / "run"), "--print-freq", "2", *extra])


def batches(n: int, size: int = 2, seed: int = 0) -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    return [(torch.randn(size, 4, generator=g), torch.randint(0, 3, (size,), generator=g)) for _ in range(n)]


def run(tmp_path, scores, *extra, scheduler_factory=None, interval="epoch", model=None):
    torch.manual_seed(0)
    model = model or nn.Linear(4, 3)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    scheduler = scheduler_factory(optimizer) if scheduler_factory else None
    args = make_args(tmp_path, *extra)
    meta = engine.Meta(model_name="linear", class_names=["a", "b", "c"], model_kwargs={"k": 1},
                       preprocess={"mean": [0.5]}, extra={"note": Path("p")})
    summary = engine.fit(model, nn.CrossEntropyLoss(), optimizer, batches(4), batches(3, seed=1), args=args,
                         rt=Runtime(device=torch.device("cpu")), metric=Scripted(scores), meta=meta,
                         scheduler=scheduler, scheduler_interval=interval)
    return summary, args.output_dir, optimizer


def test_best_pth_holds_the_best_epoch_and_last_pth_the_last(tmp_path):
    summary, out, _ = run(tmp_path, [0.5, 0.9, 0.7])
    best, last = (torch.load(out / name, weights_only=True) for name in ("best.pth", "last.pth"))
    assert best["epoch"] == 1 and best["metrics"]["score"] == 0.9 and best["best_metric"] == 0.9
    assert last["epoch"] == 2 and last["metrics"]["score"] == 0.7 and last["best_metric"] == 0.9
    assert summary == {"epoch": 2, "best_metric": 0.9, "metrics": last["metrics"], "checkpoint": out / "last.pth"}
    assert not torch.equal(best["model"]["weight"], last["model"]["weight"])


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_a_non_finite_score_stops_the_run_before_it_is_saved(tmp_path, bad):
    with pytest.raises(FloatingPointError, match=rf"^evaluation score is {bad} after epoch 2; lower --lr or check"):
        run(tmp_path, [0.4, bad, 0.3])
    out = tmp_path / "run"
    for name in ("best.pth", "last.pth"):  # both still epoch 0: the diverged epoch overwrote neither
        assert torch.load(out / name, weights_only=True)["epoch"] == 0


def test_a_non_finite_evaluation_loss_stops_the_run(tmp_path):
    """--lr 1e6 used to exit 0 with test_loss nan and a best.pth: the loss is checked like the metric."""
    class DivergesInEval(nn.Linear):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return super().forward(x) * (1.0 if self.training else float("inf"))

    with pytest.raises(FloatingPointError, match=r"^evaluation loss is nan after epoch 1; lower --lr"):
        run(tmp_path, [0.4, 0.5, 0.6], model=DivergesInEval(4, 3))
    assert not (tmp_path / "run" / "best.pth").exists() and not (tmp_path / "run" / "last.pth").exists()


def resumed(tmp_path, *extra, meta_change=None, optimizer_factory=None):
    """Train 1 epoch of 3, then resume it with `extra` flags; returns (optimizer after the resume, last checkpoint)."""
    run(tmp_path, [0.1], "--epochs", "1")
    model = nn.Linear(4, 3)
    optimizer = (optimizer_factory or (lambda params: torch.optim.SGD(params, lr=0.1, momentum=0.9)))(model.parameters())
    args = make_args(tmp_path, "--resume", str(tmp_path / "run" / "last.pth"), *extra)
    meta = dict(model_name="linear", class_names=["a", "b", "c"], model_kwargs={"k": 1}, preprocess={"mean": [0.5]})
    meta.update(meta_change or {})
    from common.checkpoint import load_checkpoint
    rt = Runtime(device=torch.device("cpu"), resume=load_checkpoint(args.resume))
    engine.fit(model, nn.CrossEntropyLoss(), optimizer, batches(4), batches(3, seed=1), args=args, rt=rt,
               metric=Scripted([0.2, 0.3]), meta=engine.Meta(**meta))
    return optimizer, torch.load(tmp_path / "run" / "last.pth", weights_only=True)


def test_resume_applies_the_flags_hyperparameters_and_keeps_the_momentum(tmp_path):
    optimizer, last = resumed(tmp_path, "--lr", "0.123",
                              optimizer_factory=lambda p: torch.optim.SGD(p, lr=0.123, momentum=0.5, weight_decay=0.01))
    group = optimizer.param_groups[0]
    assert (group["lr"], group["momentum"], group["weight_decay"]) == (0.123, 0.5, 0.01)  # not the checkpoint's 0.1/0.9/0
    assert last["optimizer"]["param_groups"][0]["lr"] == 0.123 and last["args"]["lr"] == 0.123  # args = what ran
    assert last["epoch"] == 2 and "momentum_buffer" in last["optimizer"]["state"][0]


@pytest.mark.parametrize("change, named", [
    ({"model_name": "other"}, "model linear → other"),
    ({"model_kwargs": {"k": 2}}, "model_kwargs {'k': 1} → {'k': 2}"),
    ({"class_names": ["a", "b", "z"]}, "class_names"),
    ({"preprocess": {"mean": [0.4]}}, "preprocess {'mean': [0.5]} → {'mean': [0.4]}"),
])
def test_resume_refuses_another_runs_checkpoint(tmp_path, change, named):
    with pytest.raises(UserError, match=r"^--resume \S+last.pth is another run's checkpoint \((.*)\): a resumed run keeps") as info:
        resumed(tmp_path, meta_change=change)
    assert named in str(info.value)
    assert torch.load(tmp_path / "run" / "last.pth", weights_only=True)["epoch"] == 0  # nothing written


def test_resume_names_the_changed_flag(tmp_path):
    run(tmp_path, [0.1], "--epochs", "1", "--seed", "0")
    ckpt = torch.load(tmp_path / "run" / "last.pth", weights_only=True)
    args = make_args(tmp_path, "--resume", str(tmp_path / "run" / "last.pth"), "--seed", "3", "--lr", "0.5")
    meta = engine.Meta(model_name="other", class_names=["a", "b", "c"])
    with pytest.raises(UserError) as info:
        engine.check_resumable(ckpt, meta, args)
    assert "(--seed 3 (was 0))" in str(info.value)  # --lr may change: not named
    engine.check_resumable(ckpt, engine.Meta(model_name="linear", class_names=["a", "b", "c"], model_kwargs={"k": 1},
                                             preprocess={"mean": [0.5]}), args)  # same model: other flags may change


def test_checkpoint_is_self_describing(tmp_path):
    _, out, optimizer = run(tmp_path, [0.1, 0.2, 0.3])
    ckpt = torch.load(out / "last.pth", weights_only=True)
    assert (ckpt["model_name"], ckpt["class_names"], ckpt["model_kwargs"]) == ("linear", ["a", "b", "c"], {"k": 1})
    assert ckpt["preprocess"] == {"mean": [0.5]} and ckpt["extra"] == {"note": "p"}
    assert ckpt["args"]["epochs"] == 3 and ckpt["args"]["output_dir"] == str(out)
    assert ckpt["schedule"] == {"epochs": 3, "steps_per_epoch": 4} and ckpt["scheduler"] is None
    assert ckpt["torch_version"] == str(torch.__version__)
    assert ckpt["optimizer"]["state"][0]["momentum_buffer"].shape == (3, 4)  # optimizer state saved for --resume
    assert ckpt["optimizer"]["param_groups"][0]["lr"] == optimizer.param_groups[0]["lr"]


def test_epoch_scheduler_steps_once_per_epoch_and_step_scheduler_once_per_step(tmp_path):
    def counting(optimizer):
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0 / (1 + step))

    _, _, opt = run(tmp_path / "e", [0, 0, 0], scheduler_factory=counting, interval="epoch")
    assert opt.param_groups[0]["lr"] == pytest.approx(0.1 / 4)
    _, _, opt = run(tmp_path / "s", [0, 0, 0], "--limit-batches", "3", scheduler_factory=counting, interval="step")
    assert opt.param_groups[0]["lr"] == pytest.approx(0.1 / 10)  # 3 epochs × 3 steps (--limit-batches)
    with pytest.raises(ValueError, match="scheduler_interval"):
        run(tmp_path / "x", [0], scheduler_factory=counting, interval="batch")


def test_tensorboard_gets_the_notes_scalars_at_the_notes_steps(tmp_path):
    _, out, _ = run(tmp_path, [0.25, 0.5, 0.75])
    acc = EventAccumulator(str(out), size_guidance={SCALARS: 0}).Reload()
    assert [(e.step, e.value) for e in acc.Scalars("test_score")] == [(0, 0.25), (1, 0.5), (2, 0.75)]
    assert [e.step for e in acc.Scalars("test_loss")] == [0, 1, 2]
    assert [e.step for e in acc.Scalars("train_loss")] == [2, 4, 6, 8, 10, 12]  # every --print-freq 2 of 4 × 3 steps
    assert all(e.value == pytest.approx(0.1) for e in acc.Scalars("lr"))


class Constant(nn.Module):
    """Logits that never change: the loss of every batch is known in advance."""

    def __init__(self) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bias.expand(x.shape[0], 3) * 0 + torch.log(torch.tensor([0.5, 0.25, 0.25]))


def test_test_loss_is_the_mean_over_images_not_over_batches():
    """The notes sum batch means (total_test_loss += loss.item()); the repo reports the per-image mean, so a short last
    batch does not count as much as a full one."""
    loader = [(torch.zeros(3, 4), torch.tensor([0, 0, 0])), (torch.zeros(1, 4), torch.tensor([1]))]
    result = engine.evaluate(Constant(), nn.CrossEntropyLoss(), loader, Scripted([1.0]),
                             Runtime(device=torch.device("cpu")))
    expected = (3 * -torch.log(torch.tensor(0.5)) + -torch.log(torch.tensor(0.25))) / 4
    assert result["loss"] == pytest.approx(expected.item()) and result["score"] == 1.0
    assert engine.evaluate(Constant(), nn.CrossEntropyLoss(), loader, Scripted([0.0]),
                           Runtime(device=torch.device("cpu")), limit=1)["loss"] == pytest.approx(0.6931, abs=1e-4)


def test_train_one_epoch_returns_the_mean_loss_over_all_steps_and_counts_images():
    losses = iter([1.0, 2.0, 3.0, 4.0, 5.0])
    model = nn.Linear(4, 3)

    def criterion(output, target):
        return output.sum() * 0 + next(losses)

    stats = engine.train_one_epoch(model, criterion, torch.optim.SGD(model.parameters(), lr=0.1), batches(5, size=3),
                                   rt=Runtime(device=torch.device("cpu")), epoch=0,
                                   scaler=torch.amp.GradScaler("cpu", enabled=False), print_freq=2)
    assert stats["loss"] == pytest.approx(3.0) and stats["images"] == 15 and stats["seconds"] > 0
    limited = engine.train_one_epoch(model, lambda o, t: o.sum() * 0 + 1.0, torch.optim.SGD(model.parameters(), lr=0.1),
                                     batches(5), rt=Runtime(device=torch.device("cpu")), epoch=0,
                                     scaler=torch.amp.GradScaler("cpu", enabled=False), limit=2)
    assert limited["images"] == 4 and limited["loss"] == pytest.approx(1.0)


class InterruptAt:
    """A loader of `n` batches that raises KeyboardInterrupt (Ctrl-C) at batch `at` of the epoch number `epoch`."""

    def __init__(self, n: int, epoch: int, at: int) -> None:
        self.data, self.epoch, self.at, self.calls = batches(n), epoch, at, 0

    def __len__(self) -> int:
        return len(self.data)

    def __iter__(self):
        self.calls += 1
        for i, batch in enumerate(self.data):
            if self.calls == self.epoch and i == self.at:
                raise KeyboardInterrupt
            yield batch


def test_ctrl_c_is_one_line_saying_where_what_was_saved_and_how_to_resume(tmp_path, capsys):
    from common.errors import Interrupted, cli_main

    model = nn.Linear(4, 3)
    args = make_args(tmp_path)
    meta = engine.Meta(model_name="linear", class_names=["a", "b", "c"])

    def fit(loader):
        return engine.fit(model, nn.CrossEntropyLoss(), torch.optim.SGD(model.parameters(), lr=0.1), loader,
                          batches(2), args=args, rt=Runtime(device=torch.device("cpu")), metric=Scripted([0.1, 0.2]),
                          meta=meta)

    with pytest.raises(Interrupted) as info:
        fit(InterruptAt(4, epoch=2, at=3))
    last = args.output_dir / "last.pth"
    assert str(info.value) == (f"interrupted at epoch 2, step 3; {last} holds epoch 1; resume with --resume {last} "
                               "--epochs 3")
    assert torch.load(last, weights_only=True)["epoch"] == 0
    assert sorted(p.name for p in args.output_dir.iterdir() if not p.name.startswith("events")) == [
        ".lock", "best.pth", "last.pth"]  # no temp file
    with pytest.raises(SystemExit) as exited:
        cli_main(lambda: fit(InterruptAt(4, epoch=1, at=0)))
    assert exited.value.code == 130
    err = capsys.readouterr().err
    assert err.endswith("\ninterrupted at epoch 1, step 0; no checkpoint was written yet\n")  # after tqdm's line
    assert "Traceback" not in err

    def before_training():
        raise KeyboardInterrupt

    with pytest.raises(SystemExit) as exited:
        cli_main(before_training)
    assert exited.value.code == 130 and capsys.readouterr().err == "\ninterrupted before training started; nothing was written\n"


def test_sync_bn_turns_every_batchnorm_into_syncbatchnorm_on_the_same_tensors(tmp_path):
    from common.distributed import sync_batchnorm

    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Sequential(nn.Conv2d(4, 4, 1),
                                                                                      nn.BatchNorm2d(4)))
    plain = copy.deepcopy(net)
    params, buffers, keys = list(net.parameters()), list(net.buffers()), list(net.state_dict())
    out = sync_batchnorm(net)
    assert [type(m) for m in out.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)] == [nn.SyncBatchNorm] * 2
    # an optimizer built before the conversion still owns the weights; checkpoints keep their keys
    assert all(a is b for a, b in zip(out.parameters(), params)) and all(a is b for a, b in zip(out.buffers(), buffers))
    assert list(out.state_dict()) == keys
    x = torch.randn(4, 3, 8, 8)
    assert torch.equal(out.train()(x), plain.train()(x))  # one process: the batch's own statistics, as BatchNorm's
    with pytest.raises(UserError, match=r"^--sync-bn: Sequential has no BatchNorm layer to synchronise$"):
        sync_batchnorm(nn.Sequential(nn.Linear(4, 3)))
    # engine.fit converts the model it trains when --sync-bn is given, and refuses one without BatchNorm
    bn_net = nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3))
    run(tmp_path / "a", [0.1, 0.2, 0.3], "--sync-bn", model=bn_net)
    assert isinstance(bn_net[1], nn.SyncBatchNorm)
    with pytest.raises(UserError, match="--sync-bn: Linear has no BatchNorm layer"):
        run(tmp_path / "b", [0.1, 0.2, 0.3], "--sync-bn")
    assert not (tmp_path / "b").exists()


def test_sync_bn_on_a_cpu_is_refused_before_anything_is_written(tmp_path):
    from common import runtime

    with pytest.raises(UserError, match=r"^--sync-bn needs CUDA: torch's SyncBatchNorm runs on GPUs only"):
        runtime.setup(make_args(tmp_path, "--sync-bn", "--device", "cpu"))
    assert not (tmp_path / "run").exists()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_sync_bn_trains_on_cuda(tmp_path):
    from util import load

    summary = load("05_mobilenet", "train").main(["--data", "synthetic", "--synthetic-size", "64", "-b", "16",
                                                  "--epochs", "1", "--width-mult", "0.25", "--device", "cuda",
                                                  "--sync-bn", "--output-dir", str(tmp_path / "run")])
    assert summary["checkpoint"].is_file()


def test_a_resume_whose_weights_do_not_fit_names_them(tmp_path):
    run(tmp_path, [0.1, 0.2], "--epochs", "2")
    last = tmp_path / "run" / "last.pth"
    ckpt = torch.load(last, weights_only=True)
    ckpt["model"]["weight"] = torch.zeros(3, 5)  # saved from another net: a 5-input layer
    torch.save(ckpt, last)
    with pytest.raises(UserError, match=r"^--resume .*last.pth does not fit this model \(shape-mismatched 1: weight "
                                        r"\[3, 5\] vs \[3, 4\]\)$"):
        model = nn.Linear(4, 3)
        engine.fit(model, nn.CrossEntropyLoss(), torch.optim.SGD(model.parameters(), lr=0.1), batches(4), batches(3),
                   args=make_args(tmp_path, "--epochs", "3", "--resume", str(last)),
                   rt=Runtime(device=torch.device("cpu"), resume=torch.load(last, weights_only=True)),
                   metric=Scripted([0.3]), meta=engine.Meta(model_name="linear", class_names=["a", "b", "c"],
                                                            model_kwargs={"k": 1}, preprocess={"mean": [0.5]}))


@pytest.mark.parametrize("extra, mode", [(("--compile",), None), (("--compile", "--compile-mode", "reduce-overhead"),
                                                                    "reduce-overhead")])
def test_compile_wraps_the_trained_and_the_evaluated_model_with_the_mode_asked_for(tmp_path, monkeypatch, extra, mode):
    calls = []
    monkeypatch.setattr(torch, "compile", lambda model, mode=None: calls.append(mode) or model)
    run(tmp_path, [0.1, 0.2, 0.3], *extra)
    assert calls == [mode, mode]  # the evaluated model once, the trained one once (no freeze phase re-wraps it)
