"""Shared fixtures: an isolated data root, small real domains, and a local HTTP file server."""

from __future__ import annotations

import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import torch

torch.set_num_threads(min(2, torch.get_num_threads()))


@pytest.fixture(scope="session", autouse=True)
def data_root(tmp_path_factory) -> Path:
    """Every test session builds its own caches (never the user's ~/.cache/dlapps)."""
    root = Path(os.environ.get("DLAPPS_TEST_DATA") or tmp_path_factory.mktemp("dlapps-data"))
    os.environ["DLAPPS_DATA"] = str(root)
    os.environ.pop("DLAPPS_MIRROR", None)
    return root


@pytest.fixture(scope="session")
def digits_pair():
    """mnist5k -> mnistm5k at 28x28x3 (the default experiment's data)."""
    from dlapps.data import load_domain

    return load_domain("mnist5k", 28, 3), load_domain("mnistm5k", 28, 3)


class FileServer:
    """Serves ``files`` (name -> bytes) on 127.0.0.1 with HTTP Range support.

    ``truncate[name] = n`` makes the server announce the full length but close after n bytes
    (the first time only), like a connection dropped mid-download.
    """

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.truncate: dict[str, int] = {}
        self.requests: list[tuple[str, str | None]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output clean
                pass

            def do_GET(self):  # noqa: N802
                name = self.path.lstrip("/")
                rng = self.headers.get("Range")
                server.requests.append((name, rng))
                if name not in server.files:
                    self.send_error(404)
                    return
                data = server.files[name]
                start = int(rng.split("=")[1].split("-")[0]) if rng else 0
                if start >= len(data) and rng:
                    self.send_response(416)
                    self.end_headers()
                    return
                body = data[start:]
                self.send_response(206 if rng else 200)
                if rng:
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                cut = server.truncate.pop(name, None)
                self.wfile.write(body if cut is None else body[:cut])
                self.wfile.flush()
                if cut is not None:
                    self.close_connection = True

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def file_server():
    server = FileServer()
    yield server
    server.close()


@pytest.fixture
def closed_port_url() -> str:
    """A URL on 127.0.0.1 where nothing listens: what a machine without network sees."""
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return f"http://127.0.0.1:{port}"


@pytest.fixture(scope="session")
def finished_run(tmp_path_factory):
    """One real (short) run of the default experiment, shared by the tests that inspect it."""
    from typer.testing import CliRunner

    from dlapps.cli import app

    out = tmp_path_factory.mktemp("run") / "demo"
    result = CliRunner().invoke(app, ["adapt", "--epochs", "2", "--out", str(out), "--quiet"])
    assert result.exit_code == 0, result.output
    return out, result.output


@pytest.fixture(scope="session")
def sklearn_digits_cnn():
    """A factory ``(size, epochs) -> (net, x, y)``: a tiny CNN trained with Adam (seed 0) on
    scikit-learn's real 8x8 digits, upscaled to size x size RGB in [0, 1] — the explain tests'
    real network (random weights leave logits that barely depend on the input)."""
    from sklearn.datasets import load_digits
    from torch import nn

    def train(size: int, epochs: int):
        d = load_digits()
        x = torch.tensor(d.images / 16.0, dtype=torch.float32)[:, None]
        x = nn.functional.interpolate(x, size=size, mode="bilinear").expand(-1, 3, -1, -1).contiguous()
        y = torch.tensor(d.target)
        torch.manual_seed(0)
        net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1),
                            nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(32, 10))
        opt = torch.optim.Adam(net.parameters(), lr=2e-2)
        for _ in range(epochs):
            for idx in torch.randperm(len(x)).split(128):
                opt.zero_grad()
                nn.functional.cross_entropy(net(x[idx]), y[idx]).backward()
                opt.step()
        return net, x, y

    return train


@pytest.fixture(scope="module")
def one_torch_thread():
    """For modules of tiny models: one thread is faster, and far faster on a shared CPU."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def write_image_folder(root: Path, domain, classes: list[int], per_class: tuple[int, int]) -> Path:
    """``root/{train,test}/<class name>/*.png`` from a loaded domain: ``per_class`` = (train, test)
    images of each class in ``classes`` (the first ones of each class, so the folder is fixed)."""
    from PIL import Image

    for split, x, y, n in (("train", domain.train_x, domain.train_y, per_class[0]),
                           ("test", domain.test_x, domain.test_y, per_class[1])):
        for c in classes:
            folder = root / split / domain.classes[c]
            folder.mkdir(parents=True, exist_ok=True)
            for i, idx in enumerate((y == c).nonzero().flatten()[:n].tolist()):
                img = x[idx].permute(1, 2, 0).numpy()
                Image.fromarray(img.squeeze(2) if img.shape[2] == 1 else img).save(folder / f"{i:04d}.png")
    return root


@pytest.fixture(scope="session")
def folder_pair(tmp_path_factory, digits_pair):
    """Two small ImageFolder domains made from real images: MNIST and MNIST-M digits 0, 1, 2
    (30 train + 10 test images per class each), as a user's photo folders would be laid out."""
    root = tmp_path_factory.mktemp("folders")
    source, target = digits_pair
    return (write_image_folder(root / "mnist", source, [0, 1, 2], (30, 10)),
            write_image_folder(root / "mnistm", target, [0, 1, 2], (30, 10)))


@pytest.fixture(scope="session")
def digit_folder(tmp_path_factory) -> Path:
    """imagefolder:PATH with 40 training and 10 test mnist5k digits per class, as PNG files."""
    from PIL import Image

    from dlapps.generate.data import load_gan_data

    mnist = load_gan_data("mnist5k", 32, 1)
    root = tmp_path_factory.mktemp("digits")
    for split, x, y, per_class in (("train", mnist.x, mnist.y, 40), ("test", mnist.test_x, mnist.test_y, 10)):
        for c in range(10):
            (root / split / str(c)).mkdir(parents=True)
            for i, img in enumerate(x[y == c][:per_class]):
                Image.fromarray(img[0].numpy()).save(root / split / str(c) / f"{i}.png")
    return root
