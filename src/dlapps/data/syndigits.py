"""SynDigits: digits rendered from the fonts this machine has, in the spirit of Ganin's
SynNumbers (the synthetic source domain for SVHN in DANN).

Each image shows one centred digit (its label), sometimes with neighbouring digits cut by the
border as in house-number crops, drawn with a random font, size, position, rotation, background
and stroke colour (kept apart in brightness so the digit stays legible), then blurred. Drawing
happens at twice the final resolution and is downsampled with antialiasing. Fonts are found
through matplotlib's font manager; a font is used only if its character map sends '0'..'9' to
glyphs named as those digits (symbol fonts such as cmsy10 send them elsewhere) and they draw ten
distinct, non-empty shapes (fallback fonts fail this). The point size is set per font so the digit
height, not the nominal size, is what varies at random. Generation is deterministic under a seed
for a given set of fonts; the font list is part of the cache key.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

GENERATOR_VERSION = 1
DIGITS = "0123456789"
DIGIT_NAMES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


@functools.cache
def digit_fonts() -> tuple[str, ...]:
    """Paths of the fonts on this machine that draw ten distinct digits."""
    from matplotlib import font_manager

    paths = {f.fname for f in font_manager.fontManager.ttflist}
    paths |= set(font_manager.findSystemFonts(fontext="ttf"))
    good, seen = [], set()
    for path in sorted(paths, key=lambda p: Path(p).name):
        if Path(path).name in seen or "lastresort" in Path(path).name.lower():
            continue
        glyphs = _glyphs(path)
        if glyphs is not None and len(set(glyphs)) == 10 and _names_are_digits(path):
            good.append(path)
            seen.add(Path(path).name)
    if not good:
        raise RuntimeError("no font on this machine draws the ten digits")
    return tuple(good)


def _names_are_digits(path: str) -> bool:
    """True unless the font's glyph names say '0'..'9' draw something else."""
    from fontTools.ttLib import TTFont

    try:
        cmap = TTFont(path, lazy=True).getBestCmap() or {}
    except Exception:
        return False
    for i, name in enumerate(cmap.get(ord(d), "") for d in DIGITS):
        name = name.lower()
        uninformative = name.startswith(("uni", "glyph", "cid", "g")) and any(c.isdigit() for c in name)
        if not (name.startswith(DIGIT_NAMES[i]) or uninformative):
            return False
    return True


@functools.cache
def _digit_height(path: str) -> float:
    """Height of the font's digits in pixels per point."""
    font = ImageFont.truetype(path, 100)
    left, top, right, bottom = font.getbbox(DIGITS, anchor="ls")
    return max(bottom - top, 1) / 100.0


def _glyphs(path: str) -> list[bytes] | None:
    try:
        font = ImageFont.truetype(path, 24)
    except OSError:
        return None
    out = []
    for d in DIGITS:
        img = Image.new("L", (40, 40))
        ImageDraw.Draw(img).text((20, 20), d, font=font, fill=255, anchor="mm")
        if img.getbbox() is None:
            return None
        out.append(img.tobytes())
    return out


def render(n: int, size: int, seed: int, fonts: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Render ``n`` digits at ``size`` x ``size``: uint8 (n,3,size,size) images and labels."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, size=n)
    big = 2 * size
    images = np.empty((n, size, size, 3), dtype=np.uint8)
    font_cache: dict[tuple[int, int], ImageFont.FreeTypeFont] = {}
    for i in range(n):
        f = int(rng.integers(len(fonts)))
        pt = max(6, round(rng.uniform(0.45, 0.8) * big / _digit_height(fonts[f])))
        font = font_cache.get((f, pt)) or font_cache.setdefault((f, pt), ImageFont.truetype(fonts[f], pt))
        bg, fg = _colours(rng)
        canvas = Image.new("RGB", (3 * big, big), tuple(bg))
        draw = ImageDraw.Draw(canvas)
        cx = 1.5 * big + rng.uniform(-0.08, 0.08) * big
        cy = 0.5 * big + rng.uniform(-0.08, 0.08) * big
        draw.text((cx, cy), DIGITS[labels[i]], font=font, fill=tuple(fg), anchor="mm")
        if rng.random() < 0.5:  # neighbours, as in a crop from a longer number
            gap = pt * rng.uniform(0.55, 0.75)
            for side in (-1, 1):
                if rng.random() < 0.7:
                    d = DIGITS[rng.integers(10)]
                    draw.text((cx + side * gap, cy), d, font=font, fill=tuple(fg), anchor="mm")
        img = canvas.rotate(rng.uniform(-15, 15), resample=Image.Resampling.BILINEAR,
                            center=(1.5 * big, 0.5 * big), fillcolor=tuple(bg))
        img = img.crop((big, 0, 2 * big, big))
        img = img.filter(ImageFilter.GaussianBlur(rng.uniform(0.0, 1.6)))
        images[i] = np.asarray(img.resize((size, size), Image.Resampling.LANCZOS))
    return np.ascontiguousarray(images.transpose(0, 3, 1, 2)), labels.astype(np.int64)


def _colours(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A background and a stroke colour at least 80 grey levels apart in luminance."""
    weights = np.array([0.299, 0.587, 0.114])
    while True:
        bg, fg = rng.integers(0, 256, size=3), rng.integers(0, 256, size=3)
        if abs(float((bg - fg) @ weights)) >= 80:
            return bg, fg
