"""Evaluation metrics that accumulate on the device and sync once, at the end (and across ranks under DDP)."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .distributed import all_reduce_sum_


class Accuracy:
    """Top-k accuracy; the notes' `(outputs.argmax(1) == targets).sum() / test_data_size`, for any k."""

    primary = "accuracy"

    def __init__(self, topk: tuple[int, ...] = (1,)) -> None:
        self.topk = topk
        self.reset()

    def reset(self) -> None:
        self.correct: torch.Tensor | None = None
        self.count = 0

    def update(self, output: torch.Tensor, target: torch.Tensor) -> None:
        k = min(max(self.topk), output.shape[1])
        top = output.topk(k, dim=1).indices
        hits = (top == target[:, None]).cumsum(1).sum(0)  # hits[j]: samples whose label is within the top j+1
        counts = torch.stack([hits[min(t, k) - 1] for t in self.topk]).to(torch.float64)
        self.correct = counts if self.correct is None else self.correct + counts
        self.count += target.numel()  # a Python int: no host-to-device copy per batch

    def reduce(self) -> None:
        if self.correct is not None:
            both = all_reduce_sum_(torch.cat([self.correct, self.correct.new_tensor([self.count])]))
            self.correct, self.count = both[:-1], int(both[-1].item())

    def compute(self) -> dict[str, float]:
        if self.correct is None:
            return {"accuracy" if t == 1 else f"top{t}": math.nan for t in self.topk}
        acc = (self.correct / self.count).tolist()
        return {"accuracy" if t == 1 else f"top{t}": a for t, a in zip(self.topk, acc)}


class ConfusionMatrix:
    """Pixel confusion matrix → pixel accuracy, per-class IoU and mIoU; pixels whose label is not a class (255, VOC's
    void, or anything else >= num_classes) do not count.

    Logits smaller than the label are bilinearly upsampled first, so IoU is measured at the label's full resolution
    (the notes' DeepLab V3 训练细节: 上采样后才进行IOU计算).
    """

    primary = "miou"

    def __init__(self, num_classes: int) -> None:
        self.num_classes = num_classes
        self.reset()

    def reset(self) -> None:
        self.mat: torch.Tensor | None = None

    def update(self, output: torch.Tensor, target: torch.Tensor) -> None:
        """`output`: N×C×h×w logits (or N×H×W class indices); `target`: N×H×W labels."""
        if output.dim() == 4:
            if output.shape[-2:] != target.shape[-2:]:
                output = F.interpolate(output.float(), size=target.shape[-2:], mode="bilinear", align_corners=False)
            output = output.argmax(1)
        n = self.num_classes
        valid = (target >= 0) & (target < n)  # drops 255 (void); data loaders reject other out-of-range labels
        # invalid pixels go to an extra bin; scatter_add_ has a fixed output size, so unlike boolean indexing or
        # bincount it never waits for the GPU to report a size
        idx = torch.where(valid, target.long() * n + output.long(), n * n).flatten()
        if self.mat is None:
            self.mat = torch.zeros(n * n + 1, dtype=torch.long, device=idx.device)
        self.mat.scatter_add_(0, idx, torch.ones_like(idx))

    def reduce(self) -> None:
        if self.mat is not None:
            all_reduce_sum_(self.mat)

    def matrix(self) -> torch.Tensor:
        """The num_classes × num_classes counts; rows are labels, columns predictions."""
        n = self.num_classes
        return self.mat[:n * n].reshape(n, n)

    def compute(self) -> dict[str, float | list[float]]:
        """Rows are labels, columns predictions. A class absent from both label and prediction has IoU nan and is
        left out of the mean (nan-safe), instead of counting as 0 or 1."""
        if self.mat is None:
            return {"pixel_accuracy": math.nan, "miou": math.nan, "iou": [math.nan] * self.num_classes}
        mat = self.matrix().double()
        tp = mat.diag()
        union = mat.sum(0) + mat.sum(1) - tp
        iou = torch.where(union > 0, tp / union.clamp(min=1), torch.full_like(tp, math.nan))
        total = mat.sum()
        return {"pixel_accuracy": (tp.sum() / total).item() if total > 0 else math.nan,
                "miou": iou.nanmean().item(), "iou": iou.tolist()}


class ClassConfusion(ConfusionMatrix):
    """Image-level confusion matrix for classification (rows labels, columns the top-1 prediction): per-class recall
    (`recall`, the diagonal over each row; nan for a class with no images) and the counts (`confusion`), which the
    engine draws each epoch. Same accumulation and DDP reduction as the pixel matrix."""

    primary = "mean_recall"

    def update(self, output: torch.Tensor, target: torch.Tensor) -> None:
        """`output`: N×C logits (or N class indices); `target`: N labels."""
        super().update(output.argmax(1) if output.dim() == 2 else output, target)

    def compute(self) -> dict[str, float | list]:
        if self.mat is None:
            return {"mean_recall": math.nan, "recall": [math.nan] * self.num_classes, "confusion": []}
        mat = self.matrix()
        rows = mat.sum(1).double()
        recall = torch.where(rows > 0, mat.diag().double() / rows.clamp(min=1), torch.full_like(rows, math.nan))
        return {"mean_recall": recall.nanmean().item(), "recall": recall.tolist(), "confusion": mat.tolist()}


def classification_metric(num_classes: int) -> "MetricSet":
    """What every classification train.py evaluates: top-1 accuracy (picks best.pth) and the confusion matrix."""
    return MetricSet(Accuracy(), ClassConfusion(num_classes))


def inner_boundary(masks: torch.Tensor, width: int) -> torch.Tensor:
    """N×C×H×W bool masks → the pixels of each mask within `width` px (Chebyshev distance) of a pixel outside it: the
    mask minus its erosion by a (2·width+1)² square. Outside the image counts as inside the mask, so the image border
    is no contour (max-pooling pads with -inf)."""
    eroded = -F.max_pool2d(-masks.float(), 2 * width + 1, stride=1, padding=width)
    return masks & (eroded < 0.5)


class BoundaryIoU:
    """Boundary IoU (Cheng et al., CVPR 2021) per class, mean over classes: IoU of the label's and the prediction's
    inner boundary bands of `width` px. mIoU is dominated by object interiors; this measures what skip connections, a
    decoder or a CRF change, the edges. Void pixels (255) do not count, as in `ConfusionMatrix`."""

    primary = "boundary_iou"

    def __init__(self, num_classes: int, width: int = 2) -> None:
        self.num_classes, self.width = num_classes, width
        self.reset()

    def reset(self) -> None:
        self.counts: torch.Tensor | None = None  # 2×C: intersections, unions

    def update(self, output: torch.Tensor, target: torch.Tensor) -> None:
        """`output`: N×C×h×w logits (upsampled to the label first) or N×H×W class indices; `target`: N×H×W labels."""
        if output.dim() == 4:
            if output.shape[-2:] != target.shape[-2:]:
                output = F.interpolate(output.float(), size=target.shape[-2:], mode="bilinear", align_corners=False)
            output = output.argmax(1)
        classes = torch.arange(self.num_classes, device=target.device).view(1, -1, 1, 1)
        valid = ((target >= 0) & (target < self.num_classes))[:, None]
        label = inner_boundary(target[:, None] == classes, self.width) & valid
        pred = inner_boundary(output[:, None] == classes, self.width) & valid
        counts = torch.stack([(label & pred).sum((0, 2, 3)), (label | pred).sum((0, 2, 3))])
        self.counts = counts if self.counts is None else self.counts + counts

    def reduce(self) -> None:
        if self.counts is not None:
            all_reduce_sum_(self.counts)

    def compute(self) -> dict[str, float | list[float]]:
        """A class with no boundary pixel in label or prediction has nan and is left out of the mean."""
        if self.counts is None:
            return {"boundary_iou": math.nan, "boundary_iou_per_class": [math.nan] * self.num_classes}
        inter, union = self.counts.double()
        per_class = torch.where(union > 0, inter / union.clamp(min=1), torch.full_like(inter, math.nan))
        return {"boundary_iou": per_class.nanmean().item(), "boundary_iou_per_class": per_class.tolist()}


class MetricSet:
    """Several metrics as one (what `engine.fit` takes): every call goes to each; `compute` merges their dicts; the
    first metric's `primary` picks best.pth."""

    def __init__(self, *metrics) -> None:
        self.metrics = metrics
        self.primary = metrics[0].primary

    def reset(self) -> None:
        for m in self.metrics:
            m.reset()

    def update(self, output: torch.Tensor, target: torch.Tensor) -> None:
        for m in self.metrics:
            m.update(output, target)

    def reduce(self) -> None:
        for m in self.metrics:
            m.reduce()

    def compute(self) -> dict:
        return {k: v for m in self.metrics for k, v in m.compute().items()}
