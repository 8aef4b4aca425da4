"""What the user names on the command line: class targets and images.

* A **class** is an index (``"76"``) or a name matched forgivingly against the model's classes:
  exact (case-insensitive) first, then a unique substring (``"yorkshire"``); several substrings
  match -> :class:`AmbiguousClassError` listing them with their indices; nothing matches ->
  :class:`UnknownClassError` with the closest names (difflib).
* An **image** is a file, a folder (every image in it, sorted), or the name of a photo
  scikit-image bundles (``chelsea``, ``coffee``, ``rocket``, ``astronaut``, ``motorcycle``,
  ``camera``, ...). Files are decoded by :func:`dlapps.data.sources.read_image` (16-bit, RGBA,
  palette, CMYK handled); an unreadable or tiny image raises :class:`DataError` naming it.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dlapps.errors import DataError, UnknownNameError

MIN_SIDE = 8  # smaller images carry no information a CNN could explain
# scikit-image's bundled photos (no download); "motorcycle" = left view of stereo_motorcycle
BUNDLED = (
    "chelsea",
    "coffee",
    "rocket",
    "astronaut",
    "motorcycle",
    "camera",
    "hubble_deep_field",
    "immunohistochemistry",
    "retina",
    "colorwheel",
    "coins",
    "moon",
    "page",
    "text",
    "clock",
    "horse",
    "logo",
    "brick",
    "grass",
    "gravel",
)
DEFAULT_PHOTOS = ("chelsea", "coffee", "rocket", "astronaut", "motorcycle", "camera")


class UnknownClassError(UnknownNameError):
    """A class name that matches no class; the message names the closest ones (not all 1,000)."""

    def __init__(self, name: str, classes: Sequence[str]):
        lowered = [c.lower() for c in classes]
        close = difflib.get_close_matches(name.lower(), lowered, n=5, cutoff=0.5)
        self.close = [classes[lowered.index(c)] for c in close]
        hint = f" Closest: {_listed([lowered.index(c) for c in close], classes)}." if close else ""
        Exception.__init__(
            self, f"unknown class {name!r}.{hint} Give a class name or an index 0-{len(classes) - 1}."
        )
        self.kind, self.name, self.valid = "class", name, list(classes)


class AmbiguousClassError(UnknownNameError):
    """A class name that several classes match; the message lists them with their indices."""

    def __init__(self, name: str, matches: Sequence[int], classes: Sequence[str]):
        more = f" and {len(matches) - 20} more" if len(matches) > 20 else ""
        Exception.__init__(
            self,
            f"class {name!r} is ambiguous: {_listed(matches[:20], classes)}{more}. "
            "Give the full name or the index.",
        )
        self.kind, self.name, self.valid = "class", name, list(classes)
        self.close = [classes[i] for i in matches]


def _listed(indices: Sequence[int], classes: Sequence[str]) -> str:
    return ", ".join(f"{classes[i]!r} ({i})" for i in indices)


def resolve_class(spec: str | int, classes: Sequence[str]) -> int:
    """Class index for an index or a (fuzzy) name; see the module docstring for the rules."""
    classes = list(classes)
    text = str(spec).strip()
    if text.lstrip("-").isdigit():
        if not 0 <= int(text) < len(classes):
            raise UnknownNameError("class index", text, [f"0-{len(classes) - 1}"])
        return int(text)
    for match in (lambda c: c.lower() == text.lower(), lambda c: text.lower() in c.lower()):
        found = [i for i, c in enumerate(classes) if match(c)]
        if len(found) == 1:
            return found[0]
        if found:  # several (ImageNet even has two classes named 'crane'): only the user can choose
            raise AmbiguousClassError(text, found, classes)
    raise UnknownClassError(text, classes)


@dataclass
class NamedImage:
    name: str  # file name or bundled photo name (for figures and results.json)
    pixels: np.ndarray  # uint8 HxWx3 or HxW


def bundled_photo(name: str) -> np.ndarray:
    """A photo scikit-image ships, by name (``motorcycle`` is the left stereo view)."""
    import skimage.data

    if name not in BUNDLED:
        raise UnknownNameError("image (no such file, and not a bundled photo)", name, BUNDLED)
    img = skimage.data.stereo_motorcycle()[0] if name == "motorcycle" else getattr(skimage.data, name)()
    img = np.asarray(img)
    if img.dtype == bool:
        img = img.astype(np.uint8) * 255
    return img


def load_images(specs: Sequence[str | Path]) -> list[NamedImage]:
    """Files, folders and bundled photo names -> decoded images, checked for a usable size."""
    from dlapps.data.sources import list_images, read_image

    out: list[NamedImage] = []
    for spec in specs:
        path = Path(spec).expanduser()
        if path.is_dir():
            files = list_images(path)
            if not files:
                raise DataError(f"folder {path} holds no images")
            out += [NamedImage(f.name, read_image(f)) for f in files]
        elif path.exists():
            out.append(NamedImage(path.name, read_image(path)))
        elif "/" in str(spec) or path.suffix:
            raise DataError(f"image file {path} does not exist")
        else:
            out.append(NamedImage(str(spec), bundled_photo(str(spec))))
    if not out:
        raise DataError("no images given")
    for im in out:
        h, w = im.pixels.shape[:2]
        if min(h, w) < MIN_SIDE:
            raise DataError(f"image {im.name} is {w}x{h} pixels; at least {MIN_SIDE}x{MIN_SIDE} is needed")
    return out
