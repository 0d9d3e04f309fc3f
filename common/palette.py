"""The PASCAL VOC colour map: class k is drawn in colour `palette[k]`, 255 (void) in cream, as in VOC's own PNG masks;
a run with its own class colours (`--classes FILE`) overrides the first entries."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image


def voc_palette() -> list[int]:
    """768 ints (256 RGB triples) built from the bits of the class index, exactly as VOCdevkit's `labelcolormap`."""
    palette = []
    for k in range(256):
        r = g = b = 0
        c = k
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        palette += [r, g, b]
    return palette


def with_colours(colours: Sequence[Sequence[int]] | None = None) -> list[int]:
    """768 ints: `colours[k]` for label k (a run's own classes, `--classes FILE`), VOC's colour for every other label
    (255, void, stays cream)."""
    palette = voc_palette()
    for k, colour in enumerate(colours or ()):
        palette[3 * k:3 * k + 3] = [int(v) for v in colour]
    return palette


def to_palette_image(mask: np.ndarray, colours: Sequence[Sequence[int]] | None = None) -> Image.Image:
    """H×W uint8 label map → palette-mode ('P') PIL image: the pixels stay the labels, the palette is `with_colours`."""
    image = Image.fromarray(mask.astype(np.uint8), mode="P")
    image.putpalette(with_colours(colours))
    return image
