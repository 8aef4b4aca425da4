"""Pretrained backbones: the EfficientNet-Lite0 key rename, preprocessing, taps, weights files."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dlapps.errors import CheckpointError, DataError, DownloadError, UnknownNameError
from dlapps.models import pretrained as P


@pytest.fixture(scope="module")
def lite0() -> P.Backbone:
    return P.load_backbone("efficientnet_lite0")


def _top5(backbone: P.Backbone, image: np.ndarray) -> list[str]:
    names = P.imagenet_classes()
    with torch.no_grad():
        logits = backbone.pixel_model()(backbone.preprocess([image]))
    return [names[i] for i in logits.topk(5).indices[0]]


def test_lite0_key_rename_loads_strict_and_recognises_bundled_photos(lite0):
    from skimage import data

    state = torch.load(P.lite0_weights_file(), weights_only=True)
    renamed = P.rename_lite0_keys(state)
    assert set(renamed) == set(lite0.net.state_dict())  # strict: every key matched, none left
    assert lite0.weights_id == "efficientnet-lite0-57934424" and lite0.mean == (0.5, 0.5, 0.5)
    small = lite0.at_size(128)
    assert {"tabby", "tiger cat", "Egyptian cat"} & set(_top5(small, data.chelsea()))
    assert _top5(small, data.coffee())[0] == "espresso"


def test_rename_rejects_foreign_keys():
    with pytest.raises(CheckpointError, match="_blocks.16"):
        P.rename_lite0_keys({"_blocks.16._bn0.weight": torch.zeros(1)})
    with pytest.raises(CheckpointError, match="fc.weight"):
        P.rename_lite0_keys({"fc.weight": torch.zeros(1)})


def test_random_weights_differ_from_pretrained(lite0):
    torch.manual_seed(0)
    rand = P.load_backbone("efficientnet_lite0", pretrained=False)
    assert rand.weights_id == "random"
    assert not torch.equal(rand.net.conv_stem.weight, lite0.net.conv_stem.weight)


def test_unknown_backbone_and_layer_list_the_valid_names(lite0):
    with pytest.raises(UnknownNameError, match="vgg16") as e:
        P.load_backbone("vgg61")
    assert "Did you mean 'vgg16'" in str(e.value)
    with pytest.raises(UnknownNameError, match="pool, stage5, stage6"):
        lite0.tap_node("relu7")
    assert lite0.tap_node("blocks.6.0.conv_pwl") == "blocks.6.0.conv_pwl"  # any graph node works


def test_feature_taps_give_named_activations(lite0):
    fe = lite0.at_size(64).feature_extractor(["pool", "stage6"])
    out = fe(torch.rand(2, 3, 64, 64))
    assert out["pool"].shape == (2, 1280) and out["stage6"].shape[:2] == (2, 320)


def test_preprocess_mixed_sizes_and_modes(lite0):
    b = lite0.at_size(32)
    rng = np.random.default_rng(0)
    grey = rng.integers(0, 256, (40, 60), dtype=np.uint8)
    rgb = rng.integers(0, 256, (50, 30, 3), dtype=np.uint8)
    rgba = np.dstack([rgb, np.zeros((50, 30), np.uint8)])
    deep = (grey.astype(np.uint16) * 257)[..., None]  # 16-bit grey
    x = b.preprocess([grey, rgb, rgba, deep])
    assert x.shape == (4, 3, 32, 32) and x.dtype == torch.float32
    assert x.min() >= 0 and x.max() <= 1
    assert torch.equal(x[0, 0], x[0, 2])  # grey replicated
    assert torch.allclose(x[1], x[2])  # alpha dropped
    assert torch.allclose(x[0], x[3], atol=1e-4)  # 16-bit scaled like 8-bit
    # centre crop of the short-side resize: a 64x128 image keeps its middle 64x64
    wide = torch.zeros(1, 1, 64, 128, dtype=torch.uint8)
    wide[..., 32:96] = 255
    assert b.at_size(64).preprocess(wide).min() > 0.99
    with pytest.raises(DataError, match="channels"):
        b.preprocess(torch.zeros(1, 5, 8, 8))


def test_pixel_model_normalises_inside(lite0):
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(lite0.pixel_model()(x), lite0.net((x - 0.5) / 0.5), atol=1e-5)


def test_vgg16_parameter_table_matches_the_paper():
    import torchvision

    table = P.parameter_table(torchvision.models.vgg16(weights=None))
    assert table == {"total": 138_357_544, "conv": 14_714_688, "fc": 123_642_856, "other": 0}


# --- torchvision weights through the hub cache -----------------------------------------------


@pytest.fixture
def torch_home(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    return tmp_path / "hub" / "checkpoints"


SQUEEZE_FILE = "squeezenet1_1-b8a52dc0.pth"


def test_offline_weights_error_names_file_and_folder(torch_home, monkeypatch, closed_port_url):
    monkeypatch.setenv("DLAPPS_MIRROR", closed_port_url)
    with pytest.raises(DownloadError) as e:
        P.load_backbone("squeezenet1_1")
    msg = str(e.value)
    assert SQUEEZE_FILE in msg and str(torch_home / SQUEEZE_FILE) in msg
    assert "download.pytorch.org" in msg  # where to get it


def test_weights_download_from_local_server(torch_home, monkeypatch, file_server):
    """A 404 and a file whose SHA-256 does not match its name both fail, leaving nothing behind."""
    monkeypatch.setenv("DLAPPS_MIRROR", file_server.url)
    with pytest.raises(DownloadError, match="404"):
        P.load_backbone("squeezenet1_1")
    file_server.files[SQUEEZE_FILE] = b"not the weights"
    with pytest.raises(DownloadError, match="hash"):
        P.load_backbone("squeezenet1_1")
    assert [r[0] for r in file_server.requests] == [SQUEEZE_FILE, SQUEEZE_FILE]
    assert not (torch_home / SQUEEZE_FILE).exists()


def test_weights_file_put_where_the_error_says_is_used(torch_home):
    import torchvision

    torch.manual_seed(0)
    state = torchvision.models.squeezenet1_1().state_dict()
    torch_home.mkdir(parents=True)
    torch.save(state, torch_home / SQUEEZE_FILE)
    b = P.load_backbone("squeezenet1_1")
    assert b.weights_id == "IMAGENET1K_V1" and b.mean == P.IMAGENET_MEAN
    assert torch.equal(b.first_conv.weight, state["features.0.weight"])
    (torch_home / SQUEEZE_FILE).write_bytes(b"truncated")
    with pytest.raises(CheckpointError, match="delete it"):
        P.load_backbone("squeezenet1_1")
