"""Feature vectors of a frozen backbone, computed once and cached on disk: 08_transfer's Extract Feature Vector method
(the notes' 迁移学习), where the backbone never changes, so running it every epoch would only repeat the same work.

The cache file is named by hashes of what the vectors depend on — the backbone's tensors (not the head's) and the
data with its preprocessing — so a changed weight, image or transform makes a new file, never a stale hit.
"""
from __future__ import annotations

import copy
import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from .checkpoint import load_file, save_checkpoint
from .errors import UserError
from .predict import preprocess_transform
from .runtime import Runtime
from .tensor_loader import TensorLoader


def data_fingerprint(dataset: Any, preprocess: dict[str, Any]) -> str:
    """What the vectors depend on besides the weights: the images (in memory: their pixels; an ImageFolder: each
    file's path, label, size and modification time) and the preprocessing."""
    h = hashlib.sha256(json.dumps(preprocess, sort_keys=True).encode())
    if hasattr(dataset, "samples"):
        for path, label in dataset.samples:
            st = os.stat(path)
            h.update(f"{os.path.relpath(path, dataset.root)}|{label}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    else:
        h.update(np.ascontiguousarray(dataset.data).tobytes())
        h.update(np.asarray(dataset.targets, dtype=np.int64).tobytes())
    return h.hexdigest()


def weights_fingerprint(model: nn.Module, name: str, head: tuple[str, ...]) -> str:
    """Hash of every backbone tensor (parameters and BatchNorm statistics, not those under the `head` prefixes) with
    its name, shape and dtype."""
    h = hashlib.sha256(name.encode())
    for key, value in model.state_dict().items():
        if not key.startswith(head):
            h.update(f"{key}|{tuple(value.shape)}|{value.dtype}".encode())
            h.update(value.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def ordered_loader(dataset: Any, batch_size: int, workers: int, preprocess: dict[str, Any], device: torch.device
                   ) -> Any:
    """Every image once, in order, with the evaluation preprocessing and no sharding: the input of extraction. Images
    held in memory (`dataset.data`, synthetic) stay tensors on the device; files go through a DataLoader."""
    if isinstance(getattr(dataset, "data", None), np.ndarray):
        return TensorLoader(dataset.data, dataset.targets, batch_size, train=False, device=device,
                            mean=preprocess["mean"], std=preprocess["std"])
    dataset = copy.copy(dataset)
    dataset.transform = preprocess_transform(preprocess)
    return DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=workers)


@torch.inference_mode()
def extract_features(extractor: nn.Module, loader: Any, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Run the frozen backbone over `loader` once, in eval mode and full precision: (N×D float32 vectors, N labels)."""
    extractor.to(device).eval()
    vectors, labels = [], []
    for images, targets in loader:
        vectors.append(extractor(images.to(device)).float().cpu())
        labels.append(torch.as_tensor(targets).cpu())
    return torch.cat(vectors), torch.cat(labels)


def cached_features(model: nn.Module, extractor: nn.Module, name: str, head: tuple[str, ...],
                    sets: dict[str, Any], preprocess: dict[str, Any], cache_dir: Path, rt: Runtime,
                    batch_size: int, workers: int = 0) -> tuple[dict[str, TensorDataset], dict[str, Any]]:
    """{split: TensorDataset of vectors and labels} for `sets` ({"train": ..., "val": ...}) from the cache file named
    by the (backbone weights, data) hashes, extracting them with `extractor` on a miss (rank 0 writes the file); and
    {"path", "reused", "seconds"}."""
    parts = [weights_fingerprint(model, name, head), *(data_fingerprint(d, preprocess) for d in sets.values())]
    path = cache_dir / f"{name}-{hashlib.sha256('|'.join(parts).encode()).hexdigest()[:20]}.pt"
    start = time.perf_counter()
    reused = path.is_file()
    if reused:
        try:
            cache = load_file(path)
        except UserError as exc:
            raise UserError(f"feature cache {exc}; delete it and the next run rebuilds it") from None
    else:
        cache = {}
        for split, dataset in sets.items():
            loader = ordered_loader(dataset, batch_size, workers, preprocess, rt.device)
            cache[split], cache[f"{split}_labels"] = extract_features(extractor, loader, rt.device)
        if rt.is_main:
            save_checkpoint(cache, path)  # creates the folder (train.py checks it is writable before extraction)
    seconds = time.perf_counter() - start
    if rt.is_main:
        sizes = " + ".join(f"{len(cache[s])} {s}" for s in sets)
        print(f"feature cache: {'reused' if reused else f'extracted in {seconds:.1f}s into'} {path} ({sizes} vectors "
              f"of {cache['train'].shape[1]})")
    return ({s: TensorDataset(cache[s], cache[f"{s}_labels"]) for s in sets},
            {"path": str(path), "reused": reused, "seconds": seconds})


def feature_loaders(model: nn.Module, extractor: nn.Module, name: str, head: tuple[str, ...], sets: dict[str, Any],
                    preprocess: dict[str, Any], args: Any, rt: Runtime) -> tuple[Any, Any, dict[str, Any]]:
    """08's Extract Feature Vector: the vectors of `sets` ({"train", "val"}) from the cache (`--feature-cache`, default
    `<output-dir>/feature_cache`) or extracted once, as train/val DataLoaders (`--batch-size`, the last partial batch
    dropped); and the cache's {"path", "reused", "seconds"}."""
    from .data import make_loaders

    vectors, info = cached_features(model, extractor, name, head, sets, preprocess,
                                    args.feature_cache or args.output_dir / "feature_cache", rt,
                                    args.eval_batch_size or 2 * args.batch_size, args.workers)
    return (*make_loaders(vectors["train"], vectors["val"], args, rt, drop_last=True), info)
