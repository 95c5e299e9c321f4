"""Finding, checksumming and downloading the IDX files of MNIST and Fashion-MNIST.

A split ``prefix`` (e.g. ``train``, ``t10k``, ``train5k``) names the file pair
``{prefix}-images-idx3-ubyte`` and ``{prefix}-labels-idx1-ubyte``, gzipped (``.gz``, preferred)
or raw. Folders are searched in order: ``data_dir/<name>``, ``data_dir``, ``$EBMLAB_DATA/<name>``,
``$EBMLAB_DATA``, then the cache ``$XDG_CACHE_HOME/ebmlab/<name>`` (``~/.cache/ebmlab/<name>``
when ``XDG_CACHE_HOME`` is unset). Files in ``KNOWN_MD5`` are verified by the md5 of their
decompressed bytes. Missing official splits are downloaded into the cache.
"""

from __future__ import annotations

import http.client
import os
import shutil
import tempfile
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .idx import md5_hex, parse_idx, read_bytes

MIRRORS: dict[str, tuple[str, ...]] = {
    "mnist": (
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "https://storage.googleapis.com/cvdf-datasets/mnist/",
    ),
    "fashion-mnist": ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
}
OFFICIAL_SPLITS = ("train", "t10k")
KNOWN_MD5: dict[str, dict[str, str]] = {
    "mnist": {
        "train-images-idx3-ubyte": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
        "train-labels-idx1-ubyte": "d53e105ee54ea40749a09fcbcd1e9432",
        "t10k-images-idx3-ubyte": "2646ac647ad5339dbf082846283269ea",
        "t10k-labels-idx1-ubyte": "27ae3e4e09519cfbb04c329615203637",
        "train5k-images-idx3-ubyte": "cf43cf5099b59d94a38ce26ba7d8c3cf",
        "train5k-labels-idx1-ubyte": "0b46166b7c9707a10274bd2f91b08208",
    },
    "fashion-mnist": {
        "train-images-idx3-ubyte": "f4a8712d7a061bf5bd6d2ca38dc4d50a",
        "train-labels-idx1-ubyte": "9018921c3c673c538a1fc5bad174d6f9",
        "t10k-images-idx3-ubyte": "8181f5470baa50b63fa0f6fddb340f0a",
        "t10k-labels-idx1-ubyte": "15d484375f8d13e6eb1aabb0c3f46965",
    },
}
DOWNLOAD_ERRORS = (OSError, ValueError, http.client.HTTPException)


class DatasetNotFoundError(FileNotFoundError):
    """Dataset files are in none of the searched folders and could not be downloaded."""


def idx_filenames(prefix: str) -> tuple[str, str]:
    """The (images, labels) file names of split ``prefix``, without ``.gz``."""
    return f"{prefix}-images-idx3-ubyte", f"{prefix}-labels-idx1-ubyte"


def cache_dir(name: str) -> Path:
    """``$XDG_CACHE_HOME/ebmlab/<name>``, or ``~/.cache/ebmlab/<name>``."""
    root = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(root).expanduser() / "ebmlab" / name


def search_dirs(name: str, data_dir: str | os.PathLike | None = None) -> list[Path]:
    """Folders searched for dataset ``name``, in order, without duplicates."""
    dirs: list[Path] = []
    for root in (data_dir, os.environ.get("EBMLAB_DATA") or None):
        if root is not None:
            root = Path(root).expanduser()
            dirs += [root / name, root]
    dirs.append(cache_dir(name))
    return list(dict.fromkeys(dirs))


def find_pair(prefix: str, dirs: Sequence[Path]) -> tuple[Path, Path] | None:
    """The first folder's (images, labels) paths where both files of ``prefix`` exist."""
    for folder in dirs:
        paths = [_existing(folder, filename) for filename in idx_filenames(prefix)]
        if paths[0] is not None and paths[1] is not None:
            return paths[0], paths[1]
    return None


def _existing(folder: Path, filename: str) -> Path | None:
    """``folder/filename.gz`` or ``folder/filename``, whichever exists first."""
    for path in (folder / f"{filename}.gz", folder / filename):
        if path.is_file():
            return path
    return None


def verify_md5(raw: bytes, name: str, filename: str, source: str) -> None:
    """Check decompressed ``raw`` against ``KNOWN_MD5``; unknown files pass unchecked."""
    expected = KNOWN_MD5.get(name, {}).get(filename.removesuffix(".gz"))
    if expected is None:
        return
    actual = md5_hex(raw)
    if actual != expected:
        raise ValueError(
            f"checksum mismatch for {source}: md5 of the decompressed bytes is {actual}, "
            f"expected {expected}; the file is corrupt or not the {name} file it is named after"
        )


def read_verified(path: Path, name: str) -> np.ndarray:
    """Read the IDX file at ``path``, verifying its md5 when it is a known file of ``name``."""
    raw = read_bytes(path)
    verify_md5(raw, name, path.name, str(path))
    return parse_idx(raw, str(path))


def download(
    name: str,
    prefix: str,
    dest: str | os.PathLike | None = None,
    *,
    mirrors: Sequence[str] | None = None,
    urlopen: Callable[..., Any] = urllib.request.urlopen,
    timeout: float = 30.0,
) -> tuple[Path, Path]:
    """Download the gzipped pair of official split ``prefix`` of ``name`` into ``dest``.

    ``dest`` defaults to ``cache_dir(name)``; files already there are kept. Each file is tried
    from each mirror in turn (``mirror + filename.gz``, e.g. ``file://`` URLs in tests), written
    to a temporary file, md5-verified, then renamed into place. Raises ``DatasetNotFoundError``
    listing every failed URL.
    """
    if prefix not in OFFICIAL_SPLITS:
        raise ValueError(f"prefix must be an official split {OFFICIAL_SPLITS}, got {prefix!r}")
    if isinstance(mirrors, str):
        raise TypeError(f"mirrors must be a sequence of URLs, got the single string {mirrors!r}")
    if mirrors is None:
        if name not in MIRRORS:
            raise ValueError(f"name must be one of {sorted(MIRRORS)} without mirrors, got {name!r}")
        mirrors = MIRRORS[name]
    folder = cache_dir(name) if dest is None else Path(dest)
    folder.mkdir(parents=True, exist_ok=True)
    images, labels = (
        _download_file(name, filename, folder, mirrors, urlopen, timeout)
        for filename in idx_filenames(prefix)
    )
    return images, labels


def _download_file(
    name: str,
    filename: str,
    folder: Path,
    mirrors: Sequence[str],
    urlopen: Callable[..., Any],
    timeout: float,
) -> Path:
    """Fetch ``filename.gz`` into ``folder`` from the first mirror that serves a verified copy."""
    target = folder / f"{filename}.gz"
    if target.is_file():
        return target
    failures = []
    for mirror in mirrors:
        url = f"{mirror.rstrip('/')}/{target.name}"
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{target.name}.", suffix=".part")
        try:
            with os.fdopen(fd, "wb") as out, urlopen(url, timeout=timeout) as response:
                shutil.copyfileobj(response, out)
            verify_md5(read_bytes(tmp), name, filename, url)
            os.replace(tmp, target)
            return target
        except DOWNLOAD_ERRORS as exc:
            failures.append(f"{url}: {exc}")
        finally:
            Path(tmp).unlink(missing_ok=True)
    raise DatasetNotFoundError(f"could not download {target.name}:\n  " + "\n  ".join(failures))


def locate(
    name: str,
    prefix: str,
    data_dir: str | os.PathLike | None = None,
    *,
    allow_download: bool = True,
    mirrors: Sequence[str] | None = None,
    timeout: float = 30.0,
) -> tuple[Path, Path]:
    """Paths of the (images, labels) pair of split ``prefix``: found locally or downloaded.

    Raises ``DatasetNotFoundError`` naming the files, the folders searched and where to put them.
    """
    dirs = search_dirs(name, data_dir)
    found = find_pair(prefix, dirs)
    if found is not None:
        return found
    cause = None
    if not allow_download:
        reason = "downloading is disabled (download=False)"
    elif prefix not in OFFICIAL_SPLITS:
        reason = f"only the official splits {', '.join(OFFICIAL_SPLITS)} can be downloaded"
    else:
        try:
            return download(name, prefix, cache_dir(name), mirrors=mirrors, timeout=timeout)
        except DatasetNotFoundError as exc:
            reason, cause = str(exc), exc
    images, labels = idx_filenames(prefix)
    folders = "".join(f"\n  {folder}" for folder in dirs)
    raise DatasetNotFoundError(
        f"{name} split {prefix!r} not found: looked for {images}[.gz] and {labels}[.gz] "
        f"in these folders:{folders}\nNot downloaded: {reason}\n"
        f"Put both files in one of those folders: pass data_dir=... to ebmlab.data.load "
        f"(files in data_dir/{name}/ or data_dir/), or set the EBMLAB_DATA environment "
        f"variable (files in $EBMLAB_DATA/{name}/ or $EBMLAB_DATA/)."
    ) from cause
