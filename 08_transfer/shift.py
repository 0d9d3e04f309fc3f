"""A target domain shifted from the synthetic source: other shapes, and another way of colouring and lighting them.

The source task (`train.py --synthetic-task source`, common/synthetic.py's `SyntheticShapes`) draws each shape in a random
colour on a random background colour that differs clearly in *brightness* (a gap of at least 0.45 in the channel mean),
over a faint (±0.06) sinusoidal texture. A target drawn the same way (`train.py --synthetic-task target`) is too close
to it: the source features fit as they are, so fine-tuning has nothing to adapt (README: finetune ≈ freeze).

`ShiftedShapes` keeps the geometry (the same shape sizes, positions and stripe periods) and changes the rendering:

- **palette** — low contrast: shape and background differ in brightness by 0.10-0.25 only (`BRIGHTNESS_GAP`, outside
  the source's range) and in hue (`MIN_HUE_GAP`), so the brightness edges the source features respond to are weak;
- **lighting** — a strong, smooth brightness field (±`LIGHT_AMPLITUDE`, grey, over the whole image, as uneven
  illumination) replaces the faint texture, so the largest brightness changes in an image are not the shape's.

Why this strength: with the shapes changed alone, frozen features were as good as fine-tuned ones; with shape and
background of exactly equal brightness the source hurt (a tudui from scratch beat every transferred tudui at 5 to 500
shots, one seed). In between, the source still helps and adapting it can pay, which is what compare.py measures.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from common.synthetic import SPLITS, SyntheticShapes, _grid, _shape_mask, _to_uint8  # noqa: E402

BRIGHTNESS_GAP = (0.10, 0.25)  # shape vs background, in the channel mean (source: at least 0.45)
MIN_HUE_GAP = 0.35  # RGB distance between the two colours once their brightness gap is taken out
LIGHT_AMPLITUDE = 0.25  # peak of the brightness field (source texture: 0.06)
STREAM = 8  # a random stream apart from SyntheticShapes' (seed, split, index) one


def colour_pair(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Shape and background colour: their brightness (channel mean) differs by a gap drawn from BRIGHTNESS_GAP,
    either one the lighter, around a brightness in [0.35, 0.65]; their hues differ by at least MIN_HUE_GAP."""
    brightness = rng.uniform(0.35, 0.65)
    gap = rng.uniform(*BRIGHTNESS_GAP) * rng.choice((-1.0, 1.0))
    while True:
        fg, bg = (c - c.mean() for c in rng.uniform(0.0, 1.0, (2, 3)))
        fg, bg = fg + brightness + gap / 2, bg + brightness - gap / 2
        if np.linalg.norm(fg - bg - gap) >= MIN_HUE_GAP and all(((c >= 0) & (c <= 1)).all() for c in (fg, bg)):
            return fg, bg


def lighting(rng: np.random.Generator, yy: np.ndarray, xx: np.ndarray) -> np.ndarray:
    """A smooth grey brightness field, H×W: two plane waves of 0.5-1.5 periods across the image, peak LIGHT_AMPLITUDE."""
    size = yy.shape[0]
    field = np.zeros_like(yy)
    for _ in range(2):
        angle, phase = rng.uniform(0, 2 * np.pi, 2)
        freq = rng.uniform(0.5, 1.5) * 2 * np.pi / size
        field += np.sin(freq * (np.cos(angle) * yy + np.sin(angle) * xx) + phase)
    return LIGHT_AMPLITUDE / 2 * field


class ShiftedShapes(SyntheticShapes):
    """`SyntheticShapes` with `SHAPES` = the target classes (shapes the source never saw) and the shifted rendering.
    Image i depends only on (seed, split, i) and has class i % 4, so the first 4k images hold k of each class."""

    SHAPES = ("vstripes", "checker", "x", "frame")

    def render(self, index: int, image_size: int, seed: int, split: str) -> tuple[np.ndarray, np.ndarray]:
        """(H×W×3 uint8 image, H×W bool shape mask) of image `index`."""
        rng = np.random.default_rng([seed, SPLITS[split], index, STREAM])
        yy, xx = _grid(image_size)
        fg, bg = colour_pair(rng)
        r = rng.uniform(0.22, 0.36) * image_size  # the source's geometry, unchanged
        cy, cx = rng.uniform(r, image_size - r, 2)
        period = rng.integers(max(2, image_size // 16), max(3, image_size // 8) + 1)
        mask = _shape_mask(self.classes[self.targets[index]], yy, xx, cy, cx, r, float(period))
        img = np.where(mask[..., None], fg, bg) + lighting(rng, yy, xx)[..., None]
        img += rng.normal(0, 0.04, img.shape)  # the source's pixel noise
        return _to_uint8(img), mask

    def draw(self, index: int, image_size: int, seed: int, split: str) -> np.ndarray:
        return self.render(index, image_size, seed, split)[0]


def figure(path: Path, n: int = 8, image_size: int = 32) -> Path:
    """Two rows of target images above two rows of source images (seed 0), enlarged 4×: the shift at a glance."""
    from PIL import Image

    target = ShiftedShapes(2 * n, image_size, len(ShiftedShapes.SHAPES), seed=0, split="train").data
    source = SyntheticShapes(2 * n, image_size, num_classes=6, seed=0, split="train").data
    rows = [np.concatenate(list(images[i * n:(i + 1) * n]), 1) for images in (target, source) for i in range(2)]
    grid = np.concatenate(rows, 0)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(grid).resize((grid.shape[1] * 4, grid.shape[0] * 4), Image.NEAREST).save(path)
    return path


if __name__ == "__main__":  # the README's picture: python 08_transfer/shift.py
    print(figure(Path(__file__).resolve().parent / "assets" / "target_vs_source.png"))
