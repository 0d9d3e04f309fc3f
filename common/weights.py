"""Shape-matched weight loading and freezing: the notes' 迁移学习 recipe, done right.

The notes filter a pretrained dict with `np.shape(model_dict[k]) == np.shape(v)`, which raises KeyError on any key the model
lacks and says nothing about what was skipped. `load_matching` never raises on extra keys and reports every decision.
"""
from __future__ import annotations

import argparse
import json
import re
import types
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .checkpoint import load_file, unwrap
from .errors import UserError
from .runtime import Runtime, prepare_output

WRAPPER_PREFIXES = ("module.", "_orig_mod.")
TORCHVISION_NAME = re.compile(r"\w+_Weights\.\w+")


@dataclass
class LoadReport:
    """What `load_matching` did with every tensor. Parameters and buffers are counted apart: BatchNorm's
    `num_batches_tracked` matches any BatchNorm of the same name, so a count of all tensors can look like a load when no
    weight was loaded at all."""
    loaded: list[str] = field(default_factory=list)
    mismatched: dict[str, tuple[tuple[int, ...], tuple[int, ...]]] = field(default_factory=dict)  # key: (source, model)
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    parameters: dict[str, int] = field(default_factory=dict)  # every parameter of the model: name → element count

    @property
    def loaded_parameters(self) -> list[str]:
        return [k for k in self.loaded if k in self.parameters]

    @property
    def loaded_buffers(self) -> list[str]:
        return [k for k in self.loaded if k not in self.parameters]

    @property
    def parameter_share(self) -> float:
        """The fraction of the model's parameter elements (not tensors) that came from the source."""
        total = sum(self.parameters.values())
        return sum(self.parameters[k] for k in self.loaded_parameters) / total if total else 0.0

    def summary(self) -> str:
        return (f"loaded {len(self.loaded_parameters)}/{len(self.parameters)} parameter tensors "
                f"({100 * self.parameter_share:.1f}% of parameters) and {len(self.loaded_buffers)} buffers; "
                f"shape-mismatched {len(self.mismatched)}, missing {len(self.missing)}, unexpected {len(self.unexpected)}")

    def __str__(self) -> str:
        lines = [self.summary()]
        lines += [f"  skipped {k}: source {list(s)} vs model {list(m)}" for k, (s, m) in self.mismatched.items()]
        lines += [f"  missing (kept initialisation) {k}" for k in self.missing]
        lines += [f"  unexpected (ignored) {k}" for k in self.unexpected]
        return "\n".join(lines)

    def as_dict(self) -> dict[str, Any]:
        return {"loaded": self.loaded, "mismatched": {k: [list(s), list(m)] for k, (s, m) in self.mismatched.items()},
                "missing": self.missing, "unexpected": self.unexpected,
                "loaded_parameters": len(self.loaded_parameters), "parameters": len(self.parameters),
                "parameter_share": self.parameter_share}


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


def is_weights_name(source: str | Path | None) -> bool:
    """Whether `source` means a torchvision weights name rather than a file: it looks like one and no such file exists
    (an existing file always wins)."""
    return source is not None and not Path(source).exists() and bool(TORCHVISION_NAME.fullmatch(str(source)))


def check_weights_fit(source: str | Path | None, model_name: str, flag: str = "--weights") -> None:
    """A torchvision weights name must be `model_name`'s own (ResNet18_Weights.* for resnet18), checked before anything
    is built: another net's entry would load nothing, or shape for shape the wrong thing. Files are checked on loading."""
    if not is_weights_name(source):
        return
    from torchvision.models import get_model_weights

    try:
        expected = get_model_weights(model_name).__name__
    except ValueError:  # not a torchvision architecture (e.g. the notes' Tudui)
        expected = None
    if str(source).split(".")[0] != expected:
        raise UserError(f"{flag} {source} does not fit --model {model_name}"
                        + (f" (use {expected}.IMAGENET1K_V1)" if expected else " (it has no torchvision weights)"))


def torchvision_state_dict(name: str, flag: str = "--weights") -> dict[str, torch.Tensor]:
    """Fetch a torchvision weights entry such as `MobileNet_V2_Weights.IMAGENET1K_V1` (cached under ~/.cache/torch)."""
    from torchvision.models import get_weight

    try:
        weights = get_weight(name)
    except (ValueError, KeyError, AttributeError):
        raise UserError(f"{flag} {name!r} is neither a file nor a torchvision weights name "
                        "(e.g. MobileNet_V2_Weights.IMAGENET1K_V1)") from None
    try:
        return weights.get_state_dict(progress=False)
    except OSError as exc:
        raise UserError(f"{flag}: could not download {name} ({exc.__class__.__name__}: offline?); "
                        f"download it once online, or pass a local file (torch.save(model.state_dict(), path))") \
            from None


def resolve_state_dict(source: Mapping[str, Any] | str | Path, flag: str = "--weights") -> dict[str, torch.Tensor]:
    """A state_dict from a dict, a checkpoint of this repo, a file path, or a torchvision weights name (`flag` names
    the option in error messages). An existing file always wins over a weights name."""
    if isinstance(source, (str, Path)):
        path = Path(source)
        if is_weights_name(path):
            source = torchvision_state_dict(str(source), flag)
        elif path.exists():
            source = load_file(path)
        else:
            raise UserError(f"{flag} {source}: no such file, and not a torchvision weights name "
                            "(e.g. ResNet18_Weights.IMAGENET1K_V1)")
    if not isinstance(source, Mapping):
        raise UserError(f"{flag}: the weights file holds a {type(source).__name__}, not a state_dict or checkpoint")
    if isinstance(source.get("model"), Mapping):
        source = source["model"]
    tensors = {k: v for k, v in source.items() if isinstance(v, torch.Tensor)}
    if not tensors:
        raise UserError(f"{flag}: the weights hold no tensors")
    return strip_prefixes(tensors)


def sub_state_dict(state: Mapping[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """The entries under `prefix` with the prefix removed (e.g. `backbone.` of a whole-model checkpoint), or `state`
    itself when no key has it."""
    inner = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
    return inner or dict(state)


def load_matching(model: nn.Module, source: Mapping[str, Any] | str | Path,
                  log: Callable[[str], None] | None = print, flag: str = "--weights") -> LoadReport:
    """Load every tensor whose name and shape match the model; report the rest. No matched *parameter* is a
    `UserError` (matching buffers alone, such as `num_batches_tracked`, would leave a random model)."""
    state = resolve_state_dict(source, flag)
    target = unwrap(model).state_dict()
    report = LoadReport(parameters={k: p.numel() for k, p in unwrap(model).named_parameters()})
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
    if report.parameters and not report.loaded_parameters:
        raise UserError(f"{flag}: no parameter of the model matches the weights by name and shape "
                        f"({len(report.loaded_buffers)} buffers did, {len(report.mismatched)} shape mismatches, "
                        f"{len(report.unexpected)} unknown keys); is it a checkpoint of another architecture or width?")
    unwrap(model).load_state_dict(matched, strict=False)
    if log is not None:
        log(str(report))
    return report


def load_weights_arg(model: nn.Module, args: argparse.Namespace, rt: Runtime) -> LoadReport | None:
    """`--weights`, the same in every folder: `load_matching`, the report printed on rank 0 and saved as
    `weights_report.json` in `--output-dir`, so a run's folder says what it started from (not with `--test-only`, which
    may evaluate inside another run's folder). None without `--weights`."""
    if not args.weights:
        return None
    report = load_matching(model, args.weights, log=print if rt.is_main else None)
    if rt.is_main and not args.test_only:
        text = json.dumps({"source": str(args.weights), "model": getattr(args, "model", None), **report.as_dict()},
                          indent=1)
        (prepare_output(args, rt) / "weights_report.json").write_text(text + "\n")
    return report


def _stay_in_eval(self: nn.Module, mode: bool = True) -> nn.Module:
    """`train()` of a frozen BatchNorm layer: it stays in eval mode, so its running statistics are not updated."""
    return nn.Module.train(self, False)


def freeze(model: nn.Module, prefixes: Iterable[str]) -> int:
    """The notes' 冻结训练: parameters whose name starts with any prefix get `requires_grad=False`, and the BatchNorm
    layers among them stay in eval mode through `model.train()`, so their running statistics stay the pretrained ones
    (a frozen layer whose normalisation drifts with the new data is not frozen). Returns the number of frozen tensors."""
    prefixes = tuple(prefixes)
    net = unwrap(model)
    frozen = 0
    for name, param in net.named_parameters():
        if name.startswith(prefixes):
            param.requires_grad_(False)
            frozen += 1
    if prefixes and frozen == 0:
        raise UserError(f"no parameter name starts with {list(prefixes)}; nothing to freeze")
    for name, module in net.named_modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm) and f"{name}.".startswith(prefixes):
            module.train = types.MethodType(_stay_in_eval, module)
            module.train()
    return frozen


def unfreeze(model: nn.Module) -> None:
    """Undo every `freeze`: all parameters trainable, every BatchNorm following `model.train()` / `eval()` again."""
    for param in unwrap(model).parameters():
        param.requires_grad_(True)
    for module in unwrap(model).modules():
        module.__dict__.pop("train", None)
