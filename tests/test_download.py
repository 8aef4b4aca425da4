"""Downloads against a real HTTP server on 127.0.0.1: resume, checksums, offline messages, and
archive extraction without path traversal."""

import gzip
import hashlib
import io
import tarfile

import numpy as np
import pytest

from dlapps.data.download import RemoteFile, download, extract
from dlapps.errors import DownloadError

PAYLOAD = bytes(range(256)) * 400  # 100 KiB


def _remote(server, name="data.bin", data=PAYLOAD, **kw):
    server.files[name] = data
    return RemoteFile(url=f"{server.url}/{name}", filename=name,
                      md5=hashlib.md5(data).hexdigest(), **kw)


def test_download_verifies_and_reuses(file_server, tmp_path):
    remote = _remote(file_server)
    path = download(remote, tmp_path, progress=False)
    assert path.read_bytes() == PAYLOAD
    n = len(file_server.requests)
    download(remote, tmp_path, progress=False)  # already there and verified: no request
    assert len(file_server.requests) == n


def test_truncated_download_resumes_with_range(file_server, tmp_path):
    remote = _remote(file_server)
    file_server.truncate["data.bin"] = 30_000
    with pytest.raises(DownloadError, match="incomplete|broke off"):
        download(remote, tmp_path, progress=False)
    part = tmp_path / "data.bin.part"
    assert part.stat().st_size == 30_000
    path = download(remote, tmp_path, progress=False)
    assert path.read_bytes() == PAYLOAD and not part.exists()
    assert file_server.requests[-1] == ("data.bin", "bytes=30000-")


def test_checksum_mismatch_deletes_the_file(file_server, tmp_path):
    remote = RemoteFile(url=f"{file_server.url}/data.bin", filename="data.bin", md5="0" * 32)
    file_server.files["data.bin"] = PAYLOAD
    with pytest.raises(DownloadError, match="md5 .* expected 0000"):
        download(remote, tmp_path, progress=False)
    assert not (tmp_path / "data.bin").exists() and not (tmp_path / "data.bin.part").exists()


def test_sha256_and_size_are_checked(file_server, tmp_path):
    file_server.files["a.bin"] = PAYLOAD
    good = RemoteFile(f"{file_server.url}/a.bin", "a.bin", sha256=hashlib.sha256(PAYLOAD).hexdigest(),
                      size=len(PAYLOAD))
    assert download(good, tmp_path, progress=False).exists()
    bad = RemoteFile(f"{file_server.url}/a.bin", "a.bin", size=len(PAYLOAD) + 1)
    with pytest.raises(DownloadError, match="size"):
        download(bad, tmp_path / "other", progress=False)


def test_offline_says_which_file_to_put_where(closed_port_url, tmp_path):
    remote = RemoteFile(url=f"{closed_port_url}/BSR_bsds500.tgz", filename="BSR_bsds500.tgz", md5="ab" * 16)
    with pytest.raises(DownloadError) as err:
        download(remote, tmp_path, progress=False, timeout=5)
    msg = str(err.value)
    assert "could not download" in msg and str(tmp_path / "BSR_bsds500.tgz") in msg and "md5" in msg


def test_mirror_environment_variable(file_server, tmp_path, monkeypatch):
    file_server.files["x.bin"] = PAYLOAD
    remote = RemoteFile(url="https://example.invalid/deep/path/x.bin", filename="x.bin",
                        md5=hashlib.md5(PAYLOAD).hexdigest())
    monkeypatch.setenv("DLAPPS_MIRROR", file_server.url)
    assert download(remote, tmp_path, progress=False).read_bytes() == PAYLOAD


def test_http_404_is_a_clear_error(file_server, tmp_path):
    remote = RemoteFile(url=f"{file_server.url}/missing.tgz", filename="missing.tgz")
    with pytest.raises(DownloadError, match="HTTP 404"):
        download(remote, tmp_path, progress=False)


# --- archives -----------------------------------------------------------------------------------


def _tar(members: dict[str, bytes], links: dict[str, str] | None = None) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as t:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
        for name, target in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type = tarfile.SYMTYPE
            info.linkname = target
            t.addfile(info)
    return buf.getvalue()


def test_extract_tar(tmp_path):
    archive = tmp_path / "ok.tgz"
    archive.write_bytes(_tar({"BSR/images/a.txt": b"hello", "BSR/b.txt": b"x"}))
    dest = extract(archive, tmp_path / "out")
    assert (dest / "BSR" / "images" / "a.txt").read_bytes() == b"hello"


@pytest.mark.parametrize("member", ["../evil.txt", "/tmp/evil-abs.txt", "a/../../evil.txt"])
def test_extract_refuses_path_traversal(tmp_path, member):
    archive = tmp_path / "evil.tgz"
    archive.write_bytes(_tar({"fine.txt": b"ok", member: b"pwned"}))
    with pytest.raises(DownloadError, match="outside"):
        extract(archive, tmp_path / "out")
    assert not (tmp_path / "evil.txt").exists() and not (tmp_path / "out" / "fine.txt").exists()


def test_extract_refuses_escaping_symlink(tmp_path):
    archive = tmp_path / "link.tgz"
    archive.write_bytes(_tar({"a.txt": b"ok"}, links={"escape": "../../etc/passwd"}))
    with pytest.raises(DownloadError, match="leaves"):
        extract(archive, tmp_path / "out")


def test_extract_damaged_archive_leaves_destination_alone(tmp_path):
    dest = tmp_path / "out"
    dest.mkdir()
    (dest / "keep.txt").write_text("mine")
    archive = tmp_path / "cut.tgz"
    archive.write_bytes(_tar({"a.bin": np.random.default_rng(0).bytes(50_000)})[:5_000])
    with pytest.raises(DownloadError, match="damaged|not a tar"):
        extract(archive, dest)
    assert (dest / "keep.txt").read_text() == "mine" and not (dest / "a.bin").exists()


# --- torchvision datasets ---------------------------------------------------------------------------


def _idx(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    return gzip.compress(header + array.astype(np.uint8).tobytes())


def test_torchvision_download_offline_message(closed_port_url, monkeypatch, tmp_path):
    from dlapps.data import load_domain

    monkeypatch.setenv("DLAPPS_DATA", str(tmp_path))
    monkeypatch.setenv("DLAPPS_MIRROR", closed_port_url)
    with pytest.raises(DownloadError) as err:
        load_domain("mnist", 28, 3)
    assert str(tmp_path / "torchvision" / "MNIST" / "raw" / "train-images-idx3-ubyte.gz") in str(err.value)


def test_torchvision_download_through_local_mirror(file_server, monkeypatch, tmp_path):
    """torchvision's own MNIST download code, pointed at 127.0.0.1, with our fixture files."""
    import torchvision.datasets as tvd

    from dlapps.data import load_domain

    rng = np.random.default_rng(0)
    files = {"train-images-idx3-ubyte.gz": _idx(rng.integers(0, 256, (20, 28, 28))),
             "train-labels-idx1-ubyte.gz": _idx(np.arange(20) % 10),
             "t10k-images-idx3-ubyte.gz": _idx(rng.integers(0, 256, (10, 28, 28))),
             "t10k-labels-idx1-ubyte.gz": _idx(np.arange(10))}
    file_server.files.update(files)
    # torchvision verifies each file's md5; these are the fixtures' own sums
    monkeypatch.setattr(tvd.MNIST, "resources", [(n, hashlib.md5(d).hexdigest()) for n, d in files.items()])
    monkeypatch.setenv("DLAPPS_DATA", str(tmp_path))
    monkeypatch.setenv("DLAPPS_MIRROR", file_server.url)
    d = load_domain("mnist", 28, 3)
    assert d.train_x.shape == (20, 3, 28, 28) and d.test_y.tolist() == list(range(10))
    assert {name for name, _ in file_server.requests} == set(files)
