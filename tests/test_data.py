"""Named domains: shapes, splits, the MNIST-M recipe, SynDigits, image folders, bad input."""

import numpy as np
import pytest
import torch
from PIL import Image

from dlapps.data import list_domains, load_domain, to_shape
from dlapps.data.mnistm import blend, prepare_photos
from dlapps.data.sources import image_folder, read_image
from dlapps.data.syndigits import digit_fonts, render
from dlapps.errors import DataError, UnknownNameError


def test_mnist5k_is_real_stratified_split(digits_pair):
    source, _ = digits_pair
    assert source.train_x.shape == (4000, 3, 28, 28) and source.test_x.shape == (1000, 3, 28, 28)
    assert source.train_x.dtype == torch.uint8
    assert torch.bincount(source.test_y).tolist() == [100] * 10
    assert torch.bincount(source.train_y).tolist() == [400] * 10
    # grey replicated to 3 channels, real digits (dark background, bright strokes)
    assert torch.equal(source.train_x[:, 0], source.train_x[:, 2])
    assert source.train_x.float().mean() < 60


def test_mnistm5k_matches_source_digits(digits_pair):
    source, target = digits_pair
    assert target.train_x.shape == (4000, 3, 28, 28)
    assert torch.equal(source.train_y, target.train_y)
    # colour images: channels differ
    assert not torch.equal(target.train_x[:, 0], target.train_x[:, 1])


def test_blend_formula_pixel_for_pixel():
    rng = np.random.default_rng(0)
    digits = rng.integers(0, 256, size=(5, 6, 6)).astype(np.uint8)
    digits[digits < 128] = 0
    photo = rng.integers(0, 256, size=(9, 11, 3)).astype(np.uint8)
    out = blend(digits, [photo], seed=3)
    # recompute by hand with the same random draws: photo index, then y and x offsets
    g = np.random.default_rng(3)
    g.integers(1, size=5)
    ys, xs = g.integers(0, 9 - 6 + 1, size=5), g.integers(0, 11 - 6 + 1, size=5)
    for i in range(5):
        patch = photo[ys[i]:ys[i] + 6, xs[i]:xs[i] + 6].astype(int)
        d = np.where(digits[i] > 0, 255, 0)[..., None]
        expected = np.abs(patch - d).astype(np.uint8).transpose(2, 0, 1)
        assert np.array_equal(out[i], expected)


def test_blend_is_deterministic_and_seed_dependent():
    digits = np.random.default_rng(1).integers(0, 2, size=(20, 8, 8)).astype(np.uint8) * 255
    photos = [np.random.default_rng(k).integers(0, 256, size=(30, 40, 3)).astype(np.uint8) for k in range(3)]
    assert np.array_equal(blend(digits, photos, 7), blend(digits, photos, 7))
    assert not np.array_equal(blend(digits, photos, 7), blend(digits, photos, 8))


def test_prepare_photos_downscales_to_bsds_scale():
    big = np.zeros((1000, 800, 3), np.uint8)
    small = np.zeros((100, 120, 3), np.uint8)
    out = prepare_photos([big, small])
    assert min(out[0].shape[:2]) == 321 and out[1].shape == small.shape


def test_syndigits_renders_ten_distinct_classes():
    from skimage.feature import hog
    from sklearn.svm import LinearSVC

    x, y = render(700, 32, seed=0, fonts=digit_fonts())
    assert x.shape == (700, 3, 32, 32) and set(y.tolist()) == set(range(10))
    assert np.array_equal(render(20, 32, 5, digit_fonts())[0], render(20, 32, 5, digit_fonts())[0])
    # the label is in the pixels: a linear SVM on HOG features of 600 renders tells the ten
    # classes apart on 100 others far above chance (0.1)
    feats = np.stack([hog(g, pixels_per_cell=(8, 8), cells_per_block=(2, 2)) for g in x.mean(1)])
    svm = LinearSVC(dual="auto").fit(feats[:600], y[:600])
    assert svm.score(feats[600:], y[600:]) > 0.7


def test_symbol_fonts_are_excluded():
    names = [f.rsplit("/", 1)[-1] for f in digit_fonts()]
    assert "cmsy10.ttf" not in names and "cmex10.ttf" not in names
    assert not any("LastResort" in n for n in names)


def test_to_shape_converts_channels_and_size():
    grey = torch.randint(0, 256, (3, 1, 8, 8), dtype=torch.uint8)
    out = to_shape(grey, 28, 3)
    assert out.shape == (3, 3, 28, 28) and out.dtype == torch.uint8
    assert torch.equal(out[:, 0], out[:, 1])
    colour = torch.zeros(2, 3, 32, 32, dtype=torch.uint8)
    colour[:, 1] = 200
    assert to_shape(colour, 32, 1).float().mean().item() == pytest.approx(0.587 * 200, abs=1)
    with pytest.raises(DataError):
        to_shape(torch.zeros(2, 4, 8, 8, dtype=torch.uint8), 8, 3)


def test_digits_and_list():
    d = load_domain("digits", 28, 3)
    assert d.train_x.shape[1:] == (3, 28, 28) and len(d.test_y) == 359
    names = {i.name for i in list_domains()}
    assert {"mnist5k", "mnistm5k", "mnist", "mnistm", "syndigits", "digits", "usps", "svhn",
            "fashion", "fashionm"} <= names


def test_unknown_domain_lists_valid_ones():
    with pytest.raises(UnknownNameError, match="mnist5k") as err:
        load_domain("mnist5", 28, 3)
    assert "Did you mean 'mnist5k'" in str(err.value)


# --- image files and folders --------------------------------------------------------------------


def _save(path, arr, mode=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr, mode=mode).save(path)


def test_read_image_handles_modes(tmp_path):
    rgb = np.random.default_rng(0).integers(0, 256, (5, 7, 3)).astype(np.uint8)
    _save(tmp_path / "rgb.png", rgb)
    rgba = np.concatenate([rgb, np.full((5, 7, 1), 128, np.uint8)], axis=2)
    _save(tmp_path / "rgba.png", rgba)
    g16 = (np.arange(35).reshape(5, 7) * 1800).astype(np.uint16)
    Image.fromarray(g16).save(tmp_path / "g16.png")
    Image.fromarray(rgb).convert("P").save(tmp_path / "pal.png")
    assert np.array_equal(read_image(tmp_path / "rgb.png"), rgb)
    assert np.array_equal(read_image(tmp_path / "rgba.png"), rgb)  # alpha dropped
    g = read_image(tmp_path / "g16.png", "L")
    assert g.dtype == np.uint8 and g.max() == round(34 * 1800 / 65535 * 255)
    assert read_image(tmp_path / "pal.png").shape == (5, 7, 3)


def test_read_image_names_a_corrupt_file(tmp_path):
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    with pytest.raises(DataError, match="broken.png"):
        read_image(bad)


def _folder(root, spec):
    rng = np.random.default_rng(0)
    for split, classes in spec.items():
        for c, n in classes.items():
            for i in range(n):
                size = (10 + i, 12 + i)
                _save(root / split / c / f"{i}.png", rng.integers(0, 256, (*size, 3)).astype(np.uint8))


def test_image_folder_loads_and_resizes(tmp_path):
    _folder(tmp_path, {"train": {"cat": 3, "dog": 2}, "test": {"cat": 1, "dog": 1}})
    a = image_folder(tmp_path, "RGB", 16)
    assert a["classes"] == ["cat", "dog"] and a["train_x"].shape == (5, 3, 16, 16)
    assert a["train_y"].tolist() == [0, 0, 0, 1, 1]
    d = load_domain(f"imagefolder:{tmp_path}", 28, 1)
    assert d.train_x.shape == (5, 1, 28, 28)


def test_image_folder_errors(tmp_path):
    (tmp_path / "empty" / "train" / "a").mkdir(parents=True)
    (tmp_path / "empty" / "test" / "a").mkdir(parents=True)
    with pytest.raises(DataError, match="no images"):
        image_folder(tmp_path / "empty", "RGB", 16)
    _folder(tmp_path / "one", {"train": {"a": 2}, "test": {"a": 1}})
    with pytest.raises(DataError, match="at least 2"):
        image_folder(tmp_path / "one", "RGB", 16)
    _folder(tmp_path / "extra", {"train": {"a": 2, "b": 2}, "test": {"a": 1, "c": 1}})
    with pytest.raises(DataError, match="missing from train: c"):
        image_folder(tmp_path / "extra", "RGB", 16)
    _folder(tmp_path / "corrupt", {"train": {"a": 2, "b": 2}, "test": {"a": 1, "b": 1}})
    (tmp_path / "corrupt" / "train" / "b" / "bad.jpg").write_bytes(b"garbage")
    with pytest.raises(DataError, match="bad.jpg"):
        image_folder(tmp_path / "corrupt", "RGB", 16)
    with pytest.raises(DataError, match="train"):
        image_folder(tmp_path / "nowhere", "RGB", 16)
