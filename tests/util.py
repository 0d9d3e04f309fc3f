"""Test helpers: topic folders start with digits, so their modules are loaded by path."""
from __future__ import annotations

import importlib.util
import sys
from collections import Counter
from pathlib import Path
from types import ModuleType

import torch
from torch import nn
from torch.profiler import ProfilerActivity, profile

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = sorted(p.name for p in ROOT.iterdir() if p.is_dir() and p.name[:2].isdigit() and (p / "model.py").exists())


def load(folder: str, module: str = "model") -> ModuleType:
    """Import `ROOT/folder/module.py` under a unique name, with the folder first on sys.path.

    Scripts do `from model import build_model`; the folder's own `model` (not another folder's) must win, so any cached
    sibling modules are dropped before the import.
    """
    folder_path = ROOT / folder
    for name in [n for n, m in sys.modules.items() if (getattr(m, "__file__", None) or "").startswith(str(ROOT / "0"))]:
        if not name.startswith("topic_"):
            del sys.modules[name]
    sys.path.insert(0, str(folder_path))
    try:
        spec = importlib.util.spec_from_file_location(f"topic_{folder}_{module}", folder_path / f"{module}.py")
        mod = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = mod  # dataclasses and pickling look a module up by name
        spec.loader.exec_module(mod)
        return mod
    finally:
        sys.path.remove(str(folder_path))


def training_step_ops(model: nn.Module, x: torch.Tensor) -> Counter:
    """(aten operator, input shapes) → count for one SGD training step: equal counters mean equal work, so equal speed
    (how our torchvision twins are compared without trusting a noisy shared CPU's clock)."""
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        out = model.train()(x)
        main, *aux = out if isinstance(out, tuple) else (out,)
        (main.sum() + 0.3 * sum(a.sum() for a in aux)).backward()
        optimizer.step()
    return Counter((e.name, str(e.input_shapes)) for e in prof.events() if e.name.startswith("aten::"))


def leaf_layers(model: nn.Module) -> list[tuple]:
    """(name, type, defining arguments) of every leaf module in registration order; a conv or linear also says whether
    it has a bias. ReLU's `inplace` is left out: it changes memory use, not results."""
    args = {nn.Conv2d: ("in_channels", "out_channels", "kernel_size", "stride", "padding", "groups"),
            nn.BatchNorm2d: ("num_features",), nn.ReLU: (), nn.MaxPool2d: ("kernel_size", "stride"),
            nn.AdaptiveAvgPool2d: ("output_size",), nn.Dropout: ("p",), nn.Linear: ("in_features", "out_features")}
    rows = []
    for name, m in model.named_modules():
        if not any(m.children()):
            row = (name, type(m).__name__, *(getattr(m, a) for a in args[type(m)]))
            rows.append(row + ((m.bias is not None,) if isinstance(m, (nn.Conv2d, nn.Linear)) else ()))
    return rows
