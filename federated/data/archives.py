"""Fetching a dataset archive (``https://`` or ``file://``) and unpacking it safely into a data root.

Both steps are atomic from a reader's point of view: the download goes to a temporary file in the
data root, the archive is unpacked into a temporary folder next to it, and each file is then moved
into place with :func:`os.replace`, so a loader never sees a half-written file.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.request
import zipfile
from pathlib import Path, PurePosixPath, PureWindowsPath

from federated.data.errors import DataError

__all__ = ["fetch", "unpack"]

_CHUNK_BYTES = 1 << 20


def fetch(url: str, folder: Path, md5: str | None, instructions: str) -> Path:
    """Download ``url`` into a new temporary file in ``folder`` and check its MD5 (when given).

    Returns the file's path; the caller deletes it. Any failure raises :class:`DataError` with
    ``instructions`` (what to do by hand) appended, and leaves no partial file behind.
    """
    folder.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(prefix=".download-", suffix=".part", dir=folder)
    path = Path(name)
    digest = hashlib.md5(usedforsecurity=False)
    try:
        with os.fdopen(handle, "wb") as out, urllib.request.urlopen(url, timeout=60) as response:
            while block := response.read(_CHUNK_BYTES):
                digest.update(block)
                out.write(block)
    except (urllib.error.URLError, OSError, ValueError) as err:
        path.unlink(missing_ok=True)
        raise DataError(f"could not download {url}: {err}. {instructions}") from err
    if md5 is not None and digest.hexdigest() != md5:
        path.unlink(missing_ok=True)
        raise DataError(
            f"{url} has MD5 {digest.hexdigest()}, expected {md5} (a truncated or "
            f"different file). {instructions}"
        )
    return path


def _check_member(name: str, archive: str | Path) -> None:
    posix, windows = PurePosixPath(name), PureWindowsPath(name)
    if posix.is_absolute() or windows.is_absolute() or windows.drive or ".." in windows.parts:
        raise DataError(
            f"refusing to unpack {archive}: member {name!r} would land outside "
            "the data folder (absolute path or '..')"
        )


def unpack(archive: Path, root: Path, folder: str, source: str | None = None) -> None:
    """Unpack the tar (any compression) or zip ``archive``, which holds ``folder/...``, and move
    every file of that folder into ``root / folder``. Messages name ``source`` (the URL the archive
    came from; default: the archive's path), not the temporary download.

    Members with absolute paths or ``..`` raise :class:`DataError` before anything is written; tar
    members are extracted with ``filter="data"`` (no links out, no devices, no odd permissions: a
    member the filter refuses is named in the error).
    """
    name = source or str(archive)
    scratch = Path(tempfile.mkdtemp(prefix=".unpack-", dir=root))
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as zipped:
                for member_name in zipped.namelist():
                    _check_member(member_name, name)
                zipped.extractall(scratch)
        else:
            try:
                with tarfile.open(archive, "r:*") as tar:
                    for member in tar.getmembers():
                        _check_member(member.name, name)
                    tar.extractall(scratch, filter="data")
            except tarfile.FilterError as err:  # a link out of the folder, a device, an absolute link
                raise DataError(f"refusing to unpack {name}: {err}") from err
            except tarfile.TarError as err:
                raise DataError(f"{name} is neither a zip nor a tar archive: {err}") from err
        extracted = scratch / folder
        if not extracted.is_dir():
            raise DataError(f"{name} has no folder {folder!r}; it is not the expected archive")
        for path in sorted(extracted.rglob("*")):
            if path.is_file():
                target = root / folder / path.relative_to(extracted)
                target.parent.mkdir(parents=True, exist_ok=True)
                os.replace(path, target)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
