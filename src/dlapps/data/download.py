"""Downloads for the sources torchvision lacks (BSDS500, the original MNIST-M): resumable,
verified, and extracted without path traversal.

* **Resume**: bytes go to ``<file>.part``; a later call asks the server for the rest with an HTTP
  ``Range`` header and appends (a server that ignores ranges makes it start over).
* **Verify**: the finished file must have the expected size and MD5/SHA-256; a mismatch deletes
  the file and raises :class:`DownloadError` (a bad mirror cannot poison the cache).
* **Offline**: any network failure raises :class:`DownloadError` naming the URL and the exact path
  where a user can put the file by hand.
* **Mirrors**: ``$DLAPPS_MIRROR`` (a base URL) replaces the host of every download, for users behind
  a proxy or with an internal mirror - and for the tests, which serve fixtures on 127.0.0.1.
* **Extraction** refuses members with absolute paths, ``..`` components or links that leave the
  destination folder.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tarfile
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from tqdm.auto import tqdm

from dlapps.errors import DownloadError

CHUNK = 1 << 16


@dataclass(frozen=True)
class RemoteFile:
    """A file on the web with what we know about it (any checksum left None is not checked)."""

    url: str
    filename: str
    md5: str | None = None
    sha256: str | None = None
    size: int | None = None

    def mirrored(self) -> str:
        mirror = os.environ.get("DLAPPS_MIRROR")
        return f"{mirror.rstrip('/')}/{self.filename}" if mirror else self.url


def file_digest(path: Path, algorithm: str) -> str:
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def verify(path: Path, remote: RemoteFile) -> str | None:
    """None when ``path`` matches ``remote``'s size and checksums, else what differs."""
    if remote.size is not None and path.stat().st_size != remote.size:
        return f"size {path.stat().st_size:,} bytes, expected {remote.size:,}"
    for algorithm in ("md5", "sha256"):
        expected = getattr(remote, algorithm)
        if expected and (actual := file_digest(path, algorithm)) != expected:
            return f"{algorithm} {actual}, expected {expected}"
    return None


def download(remote: RemoteFile, folder: Path, *, timeout: float = 30.0, progress: bool = True) -> Path:
    """Fetch ``remote`` into ``folder`` (resuming a partial download) and return its path."""
    folder.mkdir(parents=True, exist_ok=True)
    dest = folder / remote.filename
    if dest.exists():
        if verify(dest, remote) is None:
            return dest
        dest.unlink()
    part = dest.with_name(dest.name + ".part")
    url = remote.mirrored()
    have = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"User-Agent": "dlapps"})
    if have:
        request.add_header("Range", f"bytes={have}-")
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:  # the part file already holds every byte
            return _finish(part, dest, remote, url)
        raise _offline_error(remote, url, dest, f"HTTP {exc.code} {exc.reason}") from exc
    except (urllib.error.URLError, OSError) as exc:
        raise _offline_error(remote, url, dest, str(getattr(exc, "reason", exc))) from exc
    with response:
        resumed = response.status == 206
        if not resumed:
            have = 0
        length = response.headers.get("Content-Length")
        total = have + int(length) if length is not None else None
        got = have
        with open(part, "ab" if resumed else "wb") as f, tqdm(
            total=total, initial=have, unit="B", unit_scale=True, disable=not progress,
            desc=remote.filename, leave=False,
        ) as bar:
            try:
                while chunk := response.read(CHUNK):
                    f.write(chunk)
                    got += len(chunk)
                    bar.update(len(chunk))
            except (OSError, urllib.error.URLError) as exc:
                raise DownloadError(
                    f"download of {url} broke off after {got:,} bytes ({exc}); the partial file "
                    f"{part} is kept - run the same command again to resume"
                ) from exc
    if total is not None and got < total:
        raise DownloadError(
            f"download of {url} is incomplete: {got:,} of {total:,} bytes; the partial file "
            f"{part} is kept - run the same command again to resume"
        )
    return _finish(part, dest, remote, url)


def _finish(part: Path, dest: Path, remote: RemoteFile, url: str) -> Path:
    problem = verify(part, remote)
    if problem is not None:
        part.unlink()
        raise DownloadError(
            f"{url} does not match the expected file ({problem}); it was deleted. "
            f"Try another mirror ($DLAPPS_MIRROR) or put the right file at {dest}"
        )
    os.replace(part, dest)
    return dest


def _offline_error(remote: RemoteFile, url: str, dest: Path, reason: str) -> DownloadError:
    checks = ", ".join(f"{a} {getattr(remote, a)}" for a in ("md5", "sha256") if getattr(remote, a))
    return DownloadError(
        f"could not download {url} ({reason}). Without network, fetch {remote.url} elsewhere "
        f"and put it at {dest}" + (f" ({checks})" if checks else "")
    )


def _inside(root: Path, member: str) -> bool:
    pure = PurePosixPath(member)
    if pure.is_absolute() or ".." in pure.parts:
        return False
    return (root / pure).resolve().is_relative_to(root.resolve())


def extract(archive: Path, dest: Path) -> Path:
    """Extract a .tar(.gz|.bz2|.xz) or .zip archive into ``dest``, refusing unsafe members.

    Members are unpacked into a temporary folder beside ``dest`` and moved in only when the whole
    archive unpacked cleanly, so a damaged archive leaves ``dest`` as it was.
    """
    staging = dest.with_name(f".{dest.name}.extracting")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as z:
                _refuse_unsafe(archive, staging, z.namelist())
                z.extractall(staging)
        elif tarfile.is_tarfile(archive):
            with tarfile.open(archive) as t:
                members = t.getmembers()
                _refuse_unsafe(archive, staging, [m.name for m in members])
                for m in members:
                    target = str(PurePosixPath(m.name).parent / m.linkname)
                    if (m.issym() or m.islnk()) and not _inside(staging, target):
                        raise DownloadError(
                            f"refusing {archive}: link {m.name} -> {m.linkname} leaves {dest}"
                        )
                t.extractall(staging, filter="data")
        else:
            raise DownloadError(f"{archive} is not a tar or zip archive")
        dest.mkdir(parents=True, exist_ok=True)
        for entry in staging.iterdir():
            target = dest / entry.name
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target)
            elif target.exists() or target.is_symlink():
                target.unlink()
            os.replace(entry, target)
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError) as exc:
        raise DownloadError(f"{archive} is damaged ({exc}); delete it and download again") from exc
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return dest


def _refuse_unsafe(archive: Path, dest: Path, names: list[str]) -> None:
    bad = [n for n in names if not _inside(dest, n)]
    if bad:
        raise DownloadError(
            f"refusing {archive}: member {bad[0]!r} would be written outside the destination"
        )
