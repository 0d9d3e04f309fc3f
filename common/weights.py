"""Shape-matched weight loading and freezing: the notes' 迁移学习 recipe, done right.

The notes filter a pretrained dict with `np.shape(model_dict[k]) == np.shape(v)`, which raises KeyError on any key the model
lacks and says nothing about what was skipped. `load_matching` never raises on extra keys and reports every decision.
"""
from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .checkpoint import load_file, unwrap
from .errors import UserError

WRAPPER_PREFIXES = ("module.", "_orig_mod.")
TORCHVISION_NAME = re.compile(r"\w+_Weights\.\w+")


@dataclass
class LoadReport:
    loaded: list[str] = field(default_factory=list)
    mismatched: dict[str, tuple[tuple[int, ...], tuple[int, ...]]] = field(default_factory=dict)  # key: (source, model)
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        lines = [f"loaded {len(self.loaded)} tensors, shape-mismatched {len(self.mismatched)}, "
                 f"missing {len(self.missing)}, unexpected {len(self.unexpected)}"]
        lines += [f"  skipped {k}: source {list(s)} vs model {list(m)}" for k, (s, m) in self.mismatched.items()]
        lines += [f"  missing (kept initialisation) {k}" for k in self.missing]
        lines += [f"  unexpected (ignored) {k}" for k in self.unexpected]
        return "\n".join(lines)

    def as_dict(self) -> dict[str, Any]:
        return {"loaded": self.loaded, "mismatched": {k: [list(s), list(m)] for k, (s, m) in self.mismatched.items()},
                "missing": self.missing, "unexpected": self.unexpected}


def strip_prefixes(state_dict: Mapping[str, Any]) -> dict[str, Any]:
    """Drop DDP's `module.` and torch.compile's `_orig_mod.` prefixes so any saved model matches a plain one."""
    out = {}
    for key, value in state_dict.items():
        changed = True
        while changed:
            changed = False
            for prefix in WRAPPER_PREFIXES:
                if key.startswith(prefix):
                    key, changed = key[len(prefix):], True
        out[key] = value
    return out


def torchvision_state_dict(name: str) -> dict[str, torch.Tensor]:
    """Fetch a torchvision weights entry such as `MobileNet_V2_Weights.IMAGENET1K_V1` (cached under ~/.cache/torch)."""
    from torchvision.models import get_weight

    try:
        weights = get_weight(name)
    except (ValueError, KeyError, AttributeError):
        raise UserError(f"--weights {name!r} is neither a file nor a torchvision weights name "
                        "(e.g. MobileNet_V2_Weights.IMAGENET1K_V1)") from None
    try:
        return weights.get_state_dict(progress=False)
    except OSError as exc:
        raise UserError(f"could not download {name} ({exc.__class__.__name__}: offline?); "
                        f"download it once online or pass a local file") from None


def resolve_state_dict(source: Mapping[str, Any] | str | Path) -> dict[str, Any]:
    """A state_dict from a dict, a checkpoint of this repo, a file path, or a torchvision weights name."""
    if isinstance(source, (str, Path)):
        path = Path(source)
        if not path.exists() and TORCHVISION_NAME.fullmatch(str(source)):
            source = torchvision_state_dict(str(source))
        else:
            source = load_file(path)
    if not isinstance(source, Mapping):
        raise UserError(f"weights source is a {type(source).__name__}, not a state_dict or checkpoint")
    if isinstance(source.get("model"), Mapping):
        source = source["model"]
    tensors = {k: v for k, v in source.items() if isinstance(v, torch.Tensor)}
    if not tensors:
        raise UserError("weights source holds no tensors")
    return strip_prefixes(tensors)


def load_matching(model: nn.Module, source: Mapping[str, Any] | str | Path,
                  log: Callable[[str], None] | None = print) -> LoadReport:
    """Load every tensor whose name and shape match the model; report the rest. Zero matches is an error."""
    state = resolve_state_dict(source)
    target = unwrap(model).state_dict()
    report = LoadReport()
    matched = {}
    for key, value in state.items():
        if key not in target:
            report.unexpected.append(key)
        elif tuple(value.shape) != tuple(target[key].shape):
            report.mismatched[key] = (tuple(value.shape), tuple(target[key].shape))
        else:
            matched[key] = value
            report.loaded.append(key)
    report.missing = [k for k in target if k not in matched and k not in report.mismatched]
    if not matched:
        raise UserError(f"no tensor in the weights matches the model by name and shape "
                        f"({len(report.mismatched)} shape mismatches, {len(report.unexpected)} unknown keys)")
    unwrap(model).load_state_dict(matched, strict=False)
    if log is not None:
        log(str(report))
    return report


def freeze(model: nn.Module, prefixes: Iterable[str]) -> int:
    """`requires_grad=False` for parameters whose name starts with any prefix (the notes' 冻结训练); returns the count."""
    prefixes = tuple(prefixes)
    frozen = 0
    for name, param in unwrap(model).named_parameters():
        if name.startswith(prefixes):
            param.requires_grad_(False)
            frozen += 1
    if prefixes and frozen == 0:
        raise UserError(f"no parameter name starts with {list(prefixes)}; nothing to freeze")
    return frozen
