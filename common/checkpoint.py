"""Self-describing checkpoints, written atomically and read with `weights_only=True` (the notes' 保存模型/加载模型, method 2).

A checkpoint is a plain dict: the state_dicts, the epoch, the metric, and everything `predict.py` needs to rebuild the model
(name, constructor kwargs, class names, preprocessing). No pickled Python objects, so loading one can never run code.
"""
from __future__ import annotations

import errno
import os
import pickle
import re
import signal
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .errors import UserError, first_line


def plain(value: Any) -> Any:
    """Make `value` loadable under weights_only: Paths and other objects become strings, containers are kept."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if value is None or isinstance(value, (bool, int, float, str, torch.Tensor)):
        return value
    return str(value)


def current_umask() -> int:
    """The process umask (reading it means setting it, so it is set straight back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextmanager
def interrupts_deferred() -> Iterator[None]:
    """Hold a Ctrl-C (SIGINT) until the block is done, then raise it as `KeyboardInterrupt`: a save is never cut in
    half, and torch.save never turns the interrupt into a `RuntimeError`. Only the main thread can set handlers;
    elsewhere, and where SIGINT is ignored (`nohup`, a background job), the block runs as is: nothing to hold."""
    if threading.current_thread() is not threading.main_thread() or signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        yield
        return
    caught: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: caught.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if caught:
        raise KeyboardInterrupt


def _os_error(exc: BaseException) -> OSError | None:
    """The OSError behind `exc`, also when torch.save wraps it (`RuntimeError: [enforce fail ...]` from errno 28)."""
    while exc is not None:
        if isinstance(exc, OSError):
            return exc
        exc = exc.__cause__ or exc.__context__
    return None


def save_checkpoint(state: dict[str, Any], path: Path) -> None:
    """Write `state` to `path` atomically: temp file in the same folder, flush + fsync, then `os.replace`.

    A crash, a Ctrl-C (held until the save is done) or a full disk mid-save leaves the previous file at `path`
    untouched and no temp file behind; a full disk is a one-line `UserError` saying so. The file gets the mode a plain
    `open()` would give it under the umask (0644 under the usual 022), and the folder is created if needed: output
    folders appear with their first file, never before.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with interrupts_deferred():
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            os.fchmod(fd, 0o666 & ~current_umask())  # mkstemp's 0600 would hide checkpoints from teammates
            with os.fdopen(fd, "wb") as f:
                torch.save(state, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException as exc:
            Path(tmp).unlink()  # still there: os.replace is the last step
            disk = _os_error(exc)
            if disk is not None and disk.errno in (errno.ENOSPC, errno.EDQUOT):
                kept = "the previous checkpoint is intact" if path.exists() else "nothing was written"
                raise UserError(f"no space left on device while writing {path}; {kept}") from None
            raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


ZIP_MAGIC = b"PK\x03\x04"  # torch.save's format since 1.6
PICKLE_MAGIC = b"\x80"      # a pickle (protocol >= 2): torch.save(_use_new_zipfile_serialization=False), pickle.dump


STALE_TEMP = re.compile(r"\.[^/]+\.pth?\.[a-z0-9_]{8}\.tmp")  # save_checkpoint's temp names: .last.pth.k3j_x9a2.tmp


def remove_stale_temp_files(folder: Path) -> list[Path]:
    """Delete the temp files a killed save left in `folder` (SIGKILL cannot run cleanup; 54 kills left 471 MB), only
    those of `save_checkpoint`'s naming pattern. Call it while holding the folder (runtime.prepare_output): no other
    save can be in flight there."""
    stale = sorted(p for p in Path(folder).glob(".*.tmp") if STALE_TEMP.fullmatch(p.name) and p.is_file())
    for path in stale:
        path.unlink()
    return stale


def load_file(path: str | Path, *, unsafe_pickle: bool = False) -> Any:
    """`torch.load` a file a user handed us; every failure is a one-line `UserError` naming the file and what is wrong.

    The first bytes say what kind of file it is, so a text file, an image or a truncated download is named as such
    rather than by torch's unpickler internals (`KeyError: 101`). `unsafe_pickle=True` allows full unpickling (the notes'
    method 1, `torch.save(model)`), which runs code from the file: only for files you made yourself.
    """
    path = Path(path)
    if path.is_dir():
        raise UserError(f"{path} is a folder, not a checkpoint file")
    if not path.is_file():
        raise UserError(f"{path}: no such file")
    with path.open("rb") as f:
        head = f.read(4)
    if not head:
        raise UserError(f"{path} is empty (0 bytes), not a PyTorch file")
    if not head.startswith((ZIP_MAGIC, PICKLE_MAGIC)):
        raise UserError(f"{path} is not a PyTorch file (neither a zip archive nor a pickle; it starts with {head!r})")
    try:
        return torch.load(path, map_location="cpu", weights_only=not unsafe_pickle)
    except pickle.UnpicklingError as exc:
        found = re.search(r"GLOBAL ([\w.]+)", str(exc))
        if found:
            raise UserError(f"{path} contains pickled Python objects ({found.group(1)}), refused by torch.load(weights_only=True); "
                            "load only files you trust, with --unsafe-pickle where a script offers it") from None
        raise UserError(f"{path} is not a readable PyTorch file ({type(exc).__name__})") from None
    except Exception as exc:  # noqa: BLE001 - the file passed our checks, so whatever the unpickler raises is the file's
        damaged = " is damaged or truncated" if head.startswith(ZIP_MAGIC) else " is not a readable PyTorch file"
        raise UserError(f"{path}{damaged} ({first_line(exc)[:120]})") from None


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load a checkpoint of this repo (must hold a `model` state_dict), e.g. for `--resume` or `predict.py`."""
    ckpt = load_file(path)
    if not isinstance(ckpt, dict) or not isinstance(ckpt.get("model"), dict):
        raise UserError(f"{path} is not a checkpoint of this repo (no 'model' state_dict inside)")
    return ckpt


def unwrap(model: nn.Module) -> nn.Module:
    """The plain module inside DDP (`.module`) and torch.compile (`._orig_mod`) wrappers."""
    while True:
        if isinstance(model, nn.parallel.DistributedDataParallel):
            model = model.module
        elif hasattr(model, "_orig_mod"):
            model = model._orig_mod
        else:
            return model


def state_dict_mismatch(model: nn.Module, state: dict[str, Any], shown: int = 3) -> str:
    """Which weights of `state` do not fit `model`, in words: the first `shown` missing, unexpected and shape-mismatched
    keys with their shapes (torch's own message names them only after a first line that says nothing)."""
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [f"{k} {list(state[k].shape)} vs {list(own[k].shape)}" for k in own
              if k in state and isinstance(state[k], torch.Tensor) and state[k].shape != own[k].shape]
    parts = [f"{name} {len(keys)}: {', '.join(keys[:shown])}{', ...' if len(keys) > shown else ''}"
             for name, keys in (("missing", missing), ("unexpected", unexpected), ("shape-mismatched", shapes)) if keys]
    return "; ".join(parts) or "the tensors fit; another value is wrong"


def model_from_checkpoint(ckpt: dict[str, Any], build_model: Callable[..., nn.Module]) -> nn.Module:
    """Rebuild the model from the checkpoint alone (name, kwargs, class count) and load its weights strictly, in eval mode."""
    for key in ("model_name", "class_names"):
        if key not in ckpt:
            raise UserError(f"checkpoint has no '{key}'; it was not written by this repo's train.py")
    try:
        model = build_model(ckpt["model_name"], num_classes=len(ckpt["class_names"]), **ckpt.get("model_kwargs", {}))
        model.load_state_dict(ckpt["model"])
    except (KeyError, ValueError, RuntimeError, TypeError) as exc:
        raise UserError(f"checkpoint does not fit model {ckpt['model_name']!r} of this folder "
                        f"({first_line(exc)[:160]})") from None
    return model.eval()
