"""The PASCAL VOC colour map: class k is drawn in colour `palette[k]`, 255 (void) in cream, as in VOC's own PNG masks."""
from __future__ import annotations

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


def to_palette_image(mask: np.ndarray) -> Image.Image:
    """H×W uint8 label map → palette-mode ('P') PIL image with the VOC colours."""
    image = Image.fromarray(mask.astype(np.uint8), mode="P")
    image.putpalette(voc_palette())
    return image
