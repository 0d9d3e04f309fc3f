"""The training loop every folder shares: the notes' 完整项目代码 (train steps, test steps, TensorBoard), made fast and safe.

Per step the loop does the notes' four lines (forward, loss, zero_grad + backward, step) and one device-side copy of the loss;
the host reads losses back only every `--print-freq` steps, so the GPU never waits on Python. Evaluation runs under
`inference_mode` and reduces its metrics across DDP ranks.
"""
from __future__ import annotations

import argparse
import json
import math
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from torch.utils.tensorboard import SummaryWriter
from tqdm import tqdm

from . import distributed, schedule
from .checkpoint import plain, save_checkpoint, state_dict_mismatch, unwrap
from .cuda_graph import GraphedStep
from .errors import Interrupted, UserError, first_line
from .runtime import Runtime, prepare_output, seed_everything


MAX_CLASSES = 50  # above this, per-class lines, scalars and the confusion figure are unreadable: eval.json keeps them


@dataclass
class Meta:
    """What a checkpoint needs so predict.py can rebuild the model from the file alone."""
    model_name: str
    class_names: list[str]
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    preprocess: dict[str, Any] = field(default_factory=dict)  # e.g. {"resize": [32, 32], "mean": None, "std": None}
    extra: dict[str, Any] = field(default_factory=dict)


def autocast(rt: Runtime):
    return torch.autocast(rt.device.type, dtype=rt.amp_dtype) if rt.amp_dtype is not None else nullcontext()


def _to_device(batch: Any, rt: Runtime) -> tuple[torch.Tensor, torch.Tensor]:
    images, targets = batch
    images = images.to(rt.device, non_blocking=True)
    if rt.channels_last and images.dim() == 4:
        images = images.contiguous(memory_format=torch.channels_last)
    return images, targets.to(rt.device, non_blocking=True)


def _steps(loader: Iterable, limit: int | None) -> int:
    return len(loader) if limit is None else min(len(loader), limit)


def train_one_epoch(model: nn.Module, criterion: Callable, optimizer: torch.optim.Optimizer, loader: Iterable, *,
                    rt: Runtime, epoch: int, scaler: torch.amp.GradScaler, print_freq: int = 100,
                    scheduler: Any = None, limit: int | None = None, writer: SummaryWriter | None = None,
                    global_step: int = 0, progress: dict[str, int] | None = None,
                    batch_transform: Callable | None = None, clip_grad_norm: float | None = None,
                    ema: AveragedModel | None = None, graphed: GraphedStep | None = None) -> dict[str, float]:
    """One pass over `loader`; returns {"loss": mean train loss, "images": count, "seconds": wall time}.

    `scheduler`, when given, is stepped after every optimizer step (poly LR for segmentation); `progress["step"]`, when
    given, counts the finished steps (what an interrupt reports). `batch_transform(images, targets)` changes each batch
    on the device (mixup / cutmix), `clip_grad_norm` caps the gradients' total norm before the step (after AMP's
    unscaling), and `ema` is updated from the model after every step. `graphed` (`--cuda-graph`) replays the forward
    and backward as a CUDA graph; the optimizer step and everything after it stay the same.
    """
    model.train()
    steps = _steps(loader, limit)
    buffer = torch.zeros(print_freq, device=rt.device)  # per-step losses, read back once per print_freq steps
    loss_sum, images_seen, start = 0.0, 0, time.perf_counter()
    with tqdm(total=steps, desc=f"epoch {epoch + 1}", disable=not rt.is_main, leave=False,
              dynamic_ncols=True) as bar:  # closed on an error or Ctrl-C too, so the message gets a clean line
        for step, batch in enumerate(loader):
            if step >= steps:
                break
            images, targets = _to_device(batch, rt)
            if batch_transform is not None:
                images, targets = batch_transform(images, targets)
            lr = optimizer.param_groups[0]["lr"]  # the LR this step trains with, before a per-step scheduler moves it
            if graphed is not None:  # gradients into the graph's own tensors, replayed or (other shape) eager
                loss = graphed(images, targets)
            else:
                with autocast(rt):
                    output = model(images)
                    loss = criterion(output, targets)
                optimizer.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
            if clip_grad_norm is not None:
                scaler.unscale_(optimizer)
                nn.utils.clip_grad_norm_(model.parameters(), clip_grad_norm)
            scaler.step(optimizer)
            scaler.update()
            if ema is not None:
                ema.update_parameters(unwrap(model))
            if scheduler is not None:
                scheduler.step()
            buffer[step % print_freq] = loss.detach()
            images_seen += images.shape[0]
            if progress is not None:
                progress["step"] = step + 1
            bar.update(1)
            if (step + 1) % print_freq == 0 or step + 1 == steps:
                first = step - step % print_freq
                losses = buffer[:step - first + 1].tolist()  # the one host sync of this interval
                for i, value in enumerate(losses):
                    if not math.isfinite(value):
                        raise FloatingPointError(f"loss is {value} at epoch {epoch + 1}, step {first + i + 1} "
                                                 f"(global step {global_step + first + i + 1}); lower --lr or check "
                                                 "the data")
                loss_sum += sum(losses)
                mean = sum(losses) / len(losses)
                bar.set_postfix(loss=f"{mean:.4f}")
                if writer is not None:
                    writer.add_scalar("train_loss", mean, global_step + step + 1)
                    writer.add_scalar("lr", lr, global_step + step + 1)
    return {"loss": loss_sum / max(steps, 1), "images": images_seen, "seconds": time.perf_counter() - start}


@torch.inference_mode()
def evaluate(model: nn.Module, criterion: Callable, loader: Iterable, metric: Any, rt: Runtime,
             limit: int | None = None) -> dict[str, Any]:
    """The notes' 测试步骤: mean loss over all samples plus `metric`, summed over DDP ranks."""
    model.eval()
    metric.reset()
    loss_sum = torch.zeros((), dtype=torch.float64, device=rt.device)
    count = torch.zeros((), dtype=torch.float64, device=rt.device)
    for i, batch in enumerate(loader):
        if limit is not None and i >= limit:
            break
        images, targets = _to_device(batch, rt)
        with autocast(rt):
            output = model(images)
            loss = criterion(output, targets)
        loss_sum += loss.double() * targets.shape[0]
        count += targets.shape[0]
        metric.update(output, targets)
    distributed.all_reduce_sum_(loss_sum)
    distributed.all_reduce_sum_(count)
    metric.reduce()
    return {"loss": (loss_sum / count.clamp(min=1)).item(), **metric.compute()}


def _set_epoch(loader: Any, epoch: int) -> None:
    for target in (loader, getattr(loader, "sampler", None)):
        if hasattr(target, "set_epoch"):
            target.set_epoch(epoch)


# Flags a resumed run may change: how long, where, how fast, how it is logged; the optimizer's hyperparameters (--lr,
# --weight-decay, --momentum) apply from the flags too. Anything else (architecture, preprocessing, data) must match.
RESUMABLE_ARGS = {"epochs", "resume", "overwrite", "output_dir", "device", "workers", "print_freq", "limit_batches",
                  "amp", "channels_last", "cudnn_benchmark", "compile", "compile_mode", "cuda_graph", "eval_batch_size",
                  "batch_size", "lr", "weight_decay", "momentum", "download", "data_path", "skip_bad", "weights", "default_output_dir",
                  "lr_scheduler", "lr_step_size", "lr_gamma", "lr_warmup_epochs", "lr_warmup_method", "lr_warmup_decay",
                  "label_smoothing", "mixup_alpha", "cutmix_alpha", "random_erase", "auto_augment", "clip_grad_norm",
                  "model_ema_decay", "use_deterministic_algorithms", "sync_bn"}


def check_resumable(ckpt: dict[str, Any], meta: Meta, args: argparse.Namespace,
                    same_flags: Sequence[str] = ()) -> None:
    """A checkpoint continues only the run it came from (same model name, constructor kwargs, classes and
    preprocessing, and the same value of each flag in `same_flags`, e.g. 08's `method`) and only while epochs remain.
    A mismatch is a `UserError` naming the flags that differ, not weights saved under another label (04 `--model
    gridding` resumed from an hdc run has the same tensor shapes and would load). `fit` calls it; a folder that writes
    files of its own before `fit` calls it first."""
    stored = {"model": ckpt.get("model_name"), "model_kwargs": ckpt.get("model_kwargs", {}),
              "class_names": ckpt.get("class_names"), "preprocess": ckpt.get("preprocess", {}),
              **{f"--{name}": ckpt.get("args", {}).get(name) for name in same_flags}}
    current = {"model": meta.model_name, "model_kwargs": plain(meta.model_kwargs),
               "class_names": list(meta.class_names), "preprocess": plain(meta.preprocess),
               **{f"--{name}": getattr(args, name) for name in same_flags}}
    differ = [key for key in stored if stored[key] != current[key]]
    if not differ:
        finished = int(ckpt.get("epoch", -1)) + 1
        if finished >= args.epochs:
            raise UserError(f"--resume {args.resume} already finished epoch {finished} of {args.epochs}; "
                            f"pass a larger --epochs to continue")
        return
    old_args, new_args = ckpt.get("args", {}), plain(vars(args))
    flags = [f"--{k.replace('_', '-')} {new_args[k]} (was {old_args[k]})" for k in sorted(set(old_args) & set(new_args))
             if k not in RESUMABLE_ARGS and old_args[k] != new_args[k]]
    what = ", ".join(f"{k} {stored[k]} → {current[k]}" for k in differ)
    raise UserError(f"--resume {args.resume} is another run's checkpoint ({'; '.join(flags) or what}): a resumed run "
                    f"keeps the model, classes and preprocessing it was started with; drop the changed flags or start "
                    f"a new run")


def load_weights(ckpt: dict[str, Any], model: nn.Module, path: Any, key: str = "model") -> None:
    """The `--resume` checkpoint's weights `ckpt[key]` into `model`, strictly; a misfit names the weights that differ."""
    try:
        unwrap(model).load_state_dict(ckpt[key])
    except (KeyError, RuntimeError) as exc:
        details = state_dict_mismatch(unwrap(model), ckpt[key]) if isinstance(ckpt.get(key), dict) else str(exc)
        raise UserError(f"--resume {path} does not fit this model ({details})") from None


def _restore(ckpt: dict[str, Any], model: nn.Module, optimizer: torch.optim.Optimizer,
             scaler: torch.amp.GradScaler, path: Any, ema: AveragedModel | None = None) -> tuple[int, float]:
    """Load the model, optimizer state (momentum buffers), scaler, EMA and position. The optimizer's hyperparameters
    stay the ones the current flags built, so `--lr`/`--weight-decay` given with `--resume` apply and the checkpoint's
    stored `args` describe what ran. An EMA run keeps the trained weights in `train_model` and the average in `model`."""
    fresh = [{k: v for k, v in group.items() if k != "params"} for group in optimizer.param_groups]
    if ("train_model" in ckpt) != (ema is not None):
        raise UserError(f"--resume {path} was trained {'with' if 'train_model' in ckpt else 'without'} --model-ema; "
                        "resume it the same way")
    if ema is not None:
        load_weights(ckpt, model, path, key="train_model")
        load_weights(ckpt, ema.module, path)
        ema.n_averaged.fill_(int(ckpt["ema_updates"]))
    else:
        load_weights(ckpt, model, path)
    try:
        optimizer.load_state_dict(ckpt["optimizer"])
        for group, hyper in zip(optimizer.param_groups, fresh):
            group.update(hyper)
        if ckpt.get("scaler"):
            scaler.load_state_dict(ckpt["scaler"])
        return int(ckpt["epoch"]) + 1, float(ckpt["best_metric"])
    except (KeyError, ValueError, RuntimeError, TypeError) as exc:
        raise UserError(f"--resume {path} does not fit this optimizer "
                        f"({first_line(exc)[:160]})") from None


def fit(model: nn.Module, criterion: Callable, optimizer: torch.optim.Optimizer, train_loader: Iterable,
        val_loader: Iterable, *, args: argparse.Namespace, rt: Runtime, metric: Any, meta: Meta,
        scheduler: Any = None, scheduler_interval: str = "epoch",
        on_epoch_start: Callable[[int, nn.Module, torch.optim.Optimizer], None] | None = None,
        batch_transform: Callable | None = None) -> dict[str, Any]:
    """Train for `args.epochs` epochs (continuing after `--resume`), evaluate each epoch, log, checkpoint.

    Returns {"epoch", "best_metric", "metrics", "checkpoint"}: the summary tests and benchmarks read.
    """
    if scheduler_interval not in ("epoch", "step"):
        raise ValueError(f"scheduler_interval must be 'epoch' or 'step', got {scheduler_interval!r}")
    memory_format = torch.channels_last if rt.channels_last else torch.preserve_format
    if args.sync_bn:  # on CUDA (runtime.setup); one process: SyncBatchNorm computes what BatchNorm does
        model = distributed.sync_batchnorm(model)
    model.to(rt.device, memory_format=memory_format)
    if args.test_only:
        return test_only(model, criterion, val_loader, args=args, rt=rt, metric=metric, meta=meta)
    ema = None  # --model-ema: the average of the weights, updated every step (BatchNorm statistics averaged too)
    if args.model_ema:
        ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(args.model_ema_decay), use_buffers=True)
    scaler = torch.amp.GradScaler(rt.device.type, enabled=rt.amp_dtype == torch.float16)
    start_epoch, best = 0, -math.inf
    steps_per_epoch = _steps(train_loader, args.limit_batches)
    length = {"epochs": args.epochs, "steps_per_epoch": steps_per_epoch}  # what a scheduler's curve depends on
    if rt.resume is not None:
        check_resumable(rt.resume, meta, args)
        start_epoch, best = _restore(rt.resume, model, optimizer, scaler, args.resume, ema)
        if scheduler is not None:  # the curve comes from the current flags, only the position from the checkpoint
            position = start_epoch * (steps_per_epoch if scheduler_interval == "step" else 1)
            schedule.resume(scheduler, rt.resume.get("scheduler"), position, rt.resume.get("schedule") == length)
    evaluated = ema.module if ema is not None else model  # with --model-ema the average is what is scored and saved
    eval_net = torch.compile(evaluated, mode=args.compile_mode) if args.compile else evaluated
    train_net, grad_signature, graphed = None, None, None
    writer = SummaryWriter(log_dir=str(prepare_output(args, rt))) if rt.is_main else None
    metrics: dict[str, Any] = {}
    progress = {"epoch": start_epoch, "step": 0, "saved": start_epoch - 1 if rt.resume is not None else -1}
    try:
        for epoch in range(start_epoch, args.epochs):
            progress.update(epoch=epoch, step=0)
            seed_everything(args.seed + epoch)
            _set_epoch(train_loader, epoch)
            if on_epoch_start is not None:
                on_epoch_start(epoch, model, optimizer)
            signature = tuple(p.requires_grad for p in model.parameters())
            if signature != grad_signature:  # (re)wrap when a freeze phase changed what DDP must synchronise
                train_net = DistributedDataParallel(model, device_ids=[rt.device.index] if rt.device.type == "cuda"
                                                    else None) if rt.distributed else model
                train_net = torch.compile(train_net, mode=args.compile_mode) if args.compile else train_net
                graphed = GraphedStep(train_net, criterion, rt.amp_dtype, scaler.scale) if args.cuda_graph else None
                grad_signature = signature
            stats = train_one_epoch(train_net, criterion, optimizer, train_loader, rt=rt, epoch=epoch, scaler=scaler,
                                    print_freq=args.print_freq, limit=args.limit_batches, writer=writer,
                                    scheduler=scheduler if scheduler_interval == "step" else None,
                                    global_step=epoch * steps_per_epoch, progress=progress,
                                    batch_transform=batch_transform, clip_grad_norm=args.clip_grad_norm, ema=ema,
                                    graphed=graphed)
            if scheduler is not None and scheduler_interval == "epoch":
                scheduler.step()
            metrics = evaluate(eval_net, criterion, val_loader, metric, rt, limit=args.limit_batches)
            score = metrics[metric.primary]
            for name in ("loss", metric.primary):  # before any save: a diverged epoch never becomes last/best.pth
                if not math.isfinite(metrics[name]):
                    raise FloatingPointError(f"evaluation {name} is {metrics[name]} after epoch {epoch + 1}; "
                                             "lower --lr or check the data")
            is_best = score > best
            best = max(best, score)
            if rt.is_main:
                _log_epoch(writer, epoch, args.epochs, stats, metrics, rt, meta.class_names)
                state = {"model": unwrap(evaluated).state_dict(), "optimizer": optimizer.state_dict(),
                         "scheduler": scheduler.state_dict() if scheduler is not None else None, "schedule": length,
                         "scaler": scaler.state_dict(), "epoch": epoch, "best_metric": best,
                         "metrics": plain({k: v for k, v in metrics.items() if k != "confusion"}),
                         "args": plain(vars(args)), "model_name": meta.model_name,
                         "model_kwargs": plain(meta.model_kwargs),
                         "class_names": list(meta.class_names), "preprocess": plain(meta.preprocess),
                         "extra": plain(meta.extra), "torch_version": str(torch.__version__)}
                if ema is not None:
                    state |= {"train_model": unwrap(model).state_dict(), "ema_updates": int(ema.n_averaged)}
                save_checkpoint(state, args.output_dir / "last.pth")
                progress["saved"] = epoch
                if is_best:
                    save_checkpoint(state, args.output_dir / "best.pth")
    except KeyboardInterrupt:
        raise Interrupted(_interrupted(progress, args)) from None
    finally:
        if writer is not None:
            writer.close()
    return {"epoch": args.epochs - 1, "best_metric": best, "metrics": metrics,
            "checkpoint": args.output_dir / "last.pth"}


def test_only(model: nn.Module, criterion: Callable, val_loader: Iterable, *, args: argparse.Namespace, rt: Runtime,
              metric: Any, meta: Meta) -> dict[str, Any]:
    """`--test-only` (torchvision's name): evaluate the `--resume` checkpoint's weights (or the `--weights` the folder
    already loaded) on the validation set; print the metrics and a per-class table; write `eval.json` (metrics, per
    class, checkpoint, data) into `--output-dir`. Trains nothing, writes no checkpoint or event file."""
    if rt.resume is not None:
        load_weights(rt.resume, model, args.resume)
    metrics = evaluate(model, criterion, val_loader, metric, rt, limit=args.limit_batches)
    per_class = per_class_metrics(metrics, meta.class_names)
    report = {"metrics": {k: v for k, v in metrics.items() if isinstance(v, float)},
              "per_class": {name: {k: v[i] for k, v in per_class.items()} for i, name in enumerate(meta.class_names)},
              "checkpoint": str(args.resume or args.weights), "data": args.data, "model": meta.model_name}
    if metrics.get("confusion"):
        report["confusion"] = metrics["confusion"]  # rows labels, columns predictions, in class_names order
    path = args.output_dir / "eval.json"
    if rt.is_main:
        print("  ".join(f"test_{k} {v:.4f}" for k, v in report["metrics"].items()))
        if per_class:
            print("| class | " + " | ".join(per_class) + " |\n| --- |" + " ---: |" * len(per_class))
            for name, values in report["per_class"].items():
                print(f"| {name} | " + " | ".join(f"{v:.3f}" for v in values.values()) + " |")
        args.output_dir.mkdir(parents=True, exist_ok=True)
        if "confusion" in report and len(meta.class_names) <= MAX_CLASSES:
            from . import plots

            plots.save_figure(plots.confusion_figure(report["confusion"], meta.class_names,
                                                     f"{meta.model_name}: {args.resume or args.weights}"),
                              args.output_dir / "confusion_matrix.png")
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(json.dumps(_json_safe(plain(report)), indent=2) + "\n")
        tmp.replace(path)
    return {"metrics": metrics, "eval": path, "epoch": None, "best_metric": metrics[metric.primary],
            "checkpoint": None}


def _json_safe(value: Any) -> Any:
    """NaN and inf (e.g. the IoU of a class absent from the data) as null: JSON has no such numbers."""
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    return None if isinstance(value, float) and not math.isfinite(value) else value


def _interrupted(progress: dict[str, int], args: argparse.Namespace) -> str:
    """The one line Ctrl-C prints: where training stopped, what last.pth holds, how to go on."""
    where = f"interrupted at epoch {progress['epoch'] + 1}, step {progress['step']}"
    if progress["saved"] < 0:
        return f"{where}; no checkpoint was written yet"
    last = args.output_dir / "last.pth"
    return f"{where}; {last} holds epoch {progress['saved'] + 1}; resume with --resume {last} --epochs {args.epochs}"


def per_class_metrics(metrics: dict[str, Any], class_names: list[str]) -> dict[str, list[float]]:
    """The metrics that hold one number per class (segmentation's `iou`, classification's `recall`, ...)."""
    return {k: v for k, v in metrics.items() if k != "confusion" and isinstance(v, list) and len(v) == len(class_names)}


def _log_epoch(writer: SummaryWriter, epoch: int, epochs: int, stats: dict[str, float], metrics: dict[str, Any],
               rt: Runtime, class_names: list[str]) -> None:
    """The notes' `test_loss` / `test_accuracy` scalars (step = epoch index, like their total_test_step), and one line;
    up to MAX_CLASSES classes also each class's numbers (scalars `test_iou/<class>` and a printed line) and the
    confusion-matrix image."""
    writer.add_scalar("test_loss", metrics["loss"], epoch)
    scalars = {k: v for k, v in metrics.items() if k != "loss" and isinstance(v, float)}
    for name, value in scalars.items():
        writer.add_scalar(f"test_{name}", value, epoch)
    per_class = per_class_metrics(metrics, class_names) if len(class_names) <= MAX_CLASSES else {}
    for key, values in per_class.items():
        for name, value in zip(class_names, values):
            writer.add_scalar(f"test_{key}/{name}", value, epoch)
    if metrics.get("confusion") and len(class_names) <= MAX_CLASSES:
        from . import plots

        writer.add_image("confusion_matrix", plots.confusion_image(metrics["confusion"], class_names), epoch,
                         dataformats="HWC")
    writer.flush()
    rate = stats["images"] * rt.world_size / max(stats["seconds"], 1e-9)
    shown = "  ".join(f"test_{k} {v:.4f}" for k, v in scalars.items())
    print(f"epoch {epoch + 1}/{epochs}  train_loss {stats['loss']:.4f}  test_loss {metrics['loss']:.4f}  {shown}  "
          f"({stats['seconds']:.1f}s, {rate:.0f} img/s)", flush=True)
    for key, values in per_class.items():
        print(f"  {key}: " + ", ".join(f"{name} {value:.3f}" for name, value in zip(class_names, values)), flush=True)
