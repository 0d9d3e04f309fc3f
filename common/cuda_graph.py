"""`--cuda-graph`: a training step's forward, loss and backward captured once as a CUDA graph, then replayed.

A small model on a fast GPU spends most of each step launching kernels from Python: Tudui's eager step takes 2.4 ms on
an H200, its whole step replayed as one graph 0.33 ms (benchmarks/README.md). Only the forward and backward are
captured (torch.cuda.graph, the documented capture API): the optimizer step, gradient clipping, AMP's unscaling, EMA and
the LR schedule stay eager in the engine, so every optimizer and scheduler works unchanged. A batch of another shape or
dtype (the smaller last batch) runs eagerly into the same gradient tensors.
"""
from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from .errors import UserError, first_line

WARMUP = 3  # eager steps on a side stream before capture, as torch's capture recipe asks (cuBLAS/cuDNN workspaces)


class GraphedStep:
    """`step(images, targets)` → the loss, with every trainable parameter's `.grad` holding this batch's gradient.

    The first call captures with that batch's shape and dtype. Warm-up runs forward and backward on it `WARMUP` times and
    is then undone: gradients dropped, buffers (BatchNorm statistics) restored, so capture changes nothing a step would
    not. Gradients are None at capture, so backward writes (not adds) them into the graph's own memory on every replay;
    the eager path for other shapes zeroes those tensors in place and accumulates into them, never replacing them.
    """

    def __init__(self, model: nn.Module, criterion: Callable, amp_dtype: torch.dtype | None,
                 scale: Callable[[torch.Tensor], torch.Tensor]) -> None:
        self.model, self.criterion, self.amp_dtype, self.scale = model, criterion, amp_dtype, scale
        self.graph: torch.cuda.CUDAGraph | None = None
        self.params = [p for p in model.parameters() if p.requires_grad]

    def fits(self, images: torch.Tensor, targets: torch.Tensor) -> bool:
        """Whether the captured graph can take this batch (before capture: any batch, which then sets the shape)."""
        if self.graph is None:
            return True
        return all(a.shape == b.shape and a.dtype == b.dtype for a, b in ((images, self.images), (targets, self.targets)))

    def __call__(self, images: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        if not self.fits(images, targets):
            return self.eager(images, targets)
        if self.graph is None:
            self._capture(images, targets)
        self.images.copy_(images)
        self.targets.copy_(targets)
        self.graph.replay()
        return self.loss

    def eager(self, images: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """The same step without the graph, for a batch that does not fit it: gradients land in the same tensors."""
        for p in self.params:
            if p.grad is not None:
                p.grad.zero_()
        return self._forward_backward(images, targets)

    def _forward_backward(self, images: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        # autocast's weight cache must be off while capturing (torch.cuda.graph's documented constraint)
        with torch.autocast("cuda", dtype=self.amp_dtype or torch.float32, enabled=self.amp_dtype is not None,
                            cache_enabled=False):
            loss = self.criterion(self.model(images), targets)
        self.scale(loss).backward()
        return loss

    def _capture(self, images: torch.Tensor, targets: torch.Tensor) -> None:
        self.images, self.targets = images.clone(), targets.clone()  # static inputs; clone keeps channels_last
        saved = [b.clone() for b in self.model.buffers()]
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(WARMUP):
                for p in self.params:
                    p.grad = None
                self._forward_backward(self.images, self.targets)
        torch.cuda.current_stream().wait_stream(side)
        for p in self.params:
            p.grad = None
        graph = torch.cuda.CUDAGraph()
        try:
            with torch.cuda.graph(graph):
                self.loss = self._forward_backward(self.images, self.targets)
        except RuntimeError as exc:
            raise UserError(f"--cuda-graph: this model's step cannot be captured as a CUDA graph "
                            f"({first_line(exc)[:160]}); train without --cuda-graph") from None
        with torch.no_grad():
            for buffer, value in zip(self.model.buffers(), saved):
                buffer.copy_(value)
        self.graph = graph
