"""Data home, checksummed downloads and safe archive extraction for the fetchers.

Every remote file is described by a :class:`RemoteFileMetadata` holding its
expected SHA-256 (scikit-learn's ``fetch_*`` pattern). :func:`fetch_file`
downloads to a temporary file in the target folder, checks the size announced by
the server and the checksum, and only then moves the file into place, so a
partial or corrupted download is never mistaken for a cached one: it is removed
and reported with an ``OSError``. :func:`extract_archive` unpacks zip and tar
archives after rejecting members with absolute paths, ``..`` components, links
or special files.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import shutil
import stat
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
import zipfile
from collections import namedtuple
from pathlib import Path, PurePosixPath, PureWindowsPath

from skcollapse.utils._sklearn_compat import (
    int_interval,
    real_interval,
    validate_params,
)

__all__ = [
    "RemoteFileMetadata",
    "clear_data_home",
    "extract_archive",
    "fetch_file",
    "get_data_home",
]

_CHUNK = 1 << 20


RemoteFileMetadata = namedtuple(
    "RemoteFileMetadata", ["filename", "url", "sha256", "md5"], defaults=(None,)
)
RemoteFileMetadata.__doc__ = """Remote file to download and verify.

Parameters
----------
filename : str
    Name of the file once stored in the data home (no folder part).
url : str
    Where to download it from (``https://``, ``http://`` or ``file://``).
sha256 : str or None
    Expected SHA-256 hex digest. Always set it when it is known.
md5 : str or None, default=None
    Expected MD5 hex digest, used only when ``sha256`` is ``None`` (some
    archives only have a published MD5). At least one digest is required.
"""


_PATH = [str, os.PathLike]

#: the constraints of the retry parameters of every download
_RETRY_CONSTRAINTS = {
    "n_retries": [int_interval(0, None, closed="left")],
    "delay": [real_interval(0, None, closed="left")],
}
#: the constraints of the download parameters every ``fetch_*`` loader takes
_FETCH_CONSTRAINTS = {
    "data_home": [None, *_PATH],
    "download_if_missing": ["boolean"],
    **_RETRY_CONSTRAINTS,
}
#: the Parameters entries of the retry parameters of a ``fetch_*`` loader
_RETRY_PARAMS_DOC = """
n_retries : int, default=3
    Extra download attempts after a network error.
delay : float, default=1.0
    Seconds between download attempts.
"""


@validate_params({"data_home": [None, *_PATH]}, prefer_skip_nested_validation=True)
def get_data_home(data_home=None):
    """Return the folder where skcollapse caches downloaded datasets.

    By default it is ``~/skcollapse_data``; the ``SKCOLLAPSE_DATA`` environment
    variable overrides it, and an explicit ``data_home`` overrides both. The
    folder is created if needed; ``~`` is expanded.

    Parameters
    ----------
    data_home : str or path-like, default=None
        Explicit folder.

    Returns
    -------
    data_home : str
        Absolute path of the data home.

    Examples
    --------
    >>> import os, tempfile
    >>> folder = tempfile.mkdtemp()
    >>> get_data_home(folder) == os.path.abspath(folder)
    True
    """
    if data_home is None:
        data_home = os.environ.get("SKCOLLAPSE_DATA") or os.path.join(
            "~", "skcollapse_data"
        )
    data_home = os.path.abspath(os.path.expanduser(data_home))
    os.makedirs(data_home, exist_ok=True)
    return data_home


@validate_params({"data_home": [None, *_PATH]}, prefer_skip_nested_validation=True)
def clear_data_home(data_home=None):
    """Delete everything in the data home.

    Parameters
    ----------
    data_home : str or path-like, default=None
        Folder to clear; see :func:`get_data_home`.
    """
    shutil.rmtree(get_data_home(data_home))


def _check_metadata(remote):
    """The fields of a RemoteFileMetadata: a plain file name and a checksum."""
    name = remote.filename
    if (
        not isinstance(name, str)
        or not name
        or name in {".", ".."}
        or "/" in name
        or "\\" in name
    ):
        raise ValueError(
            f"RemoteFileMetadata.filename must be a plain file name, got {name!r}."
        )
    if remote.sha256 is None and remote.md5 is None:
        raise ValueError(f"{name}: give the expected sha256 (or md5) checksum.")


def _digest_name(remote):
    return ("sha256", remote.sha256) if remote.sha256 else ("md5", remote.md5)


def file_checksum(path, algorithm="sha256"):
    """Hex digest of a file, read in chunks."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _download_once(remote, folder, timeout):
    """Stream ``remote.url`` into a temporary file; return its path."""
    algorithm, _ = _digest_name(remote)
    digest = hashlib.new(algorithm)
    fd, tmp_path = tempfile.mkstemp(
        prefix=f".{remote.filename}.", suffix=".part", dir=folder
    )
    try:
        with (
            os.fdopen(fd, "wb") as out,
            urllib.request.urlopen(remote.url, timeout=timeout) as response,
        ):
            expected_size = response.headers.get("Content-Length")
            received = 0
            for chunk in iter(lambda: response.read(_CHUNK), b""):
                out.write(chunk)
                digest.update(chunk)
                received += len(chunk)
        if expected_size is not None and received != int(expected_size):
            raise _PartialDownload(
                f"Incomplete download of {remote.url}: received {received} of "
                f"{int(expected_size)} bytes."
            )
    except BaseException:
        _remove_quietly(tmp_path)
        raise
    return tmp_path, digest.hexdigest()


class _PartialDownload(OSError):
    pass


def _remove_quietly(path):
    try:
        os.remove(path)
    except FileNotFoundError:
        pass


@validate_params(
    {
        "remote": [RemoteFileMetadata],
        "folder": _PATH,
        **_RETRY_CONSTRAINTS,
        "timeout": [real_interval(0, None, closed="neither")],
    },
    prefer_skip_nested_validation=True,
)
def fetch_file(remote, folder, *, n_retries=3, delay=1.0, timeout=60):
    """Download a remote file once, verify its checksum and return its local path.

    A cached file whose checksum matches is returned without any download. A
    cached file that does not match (a corrupted cache) is removed and downloaded
    again. A download is written to a temporary ``.part`` file beside the target
    and moved into place only after its size and checksum are verified; a
    partial or corrupted download is deleted and reported with an ``OSError``
    that names the URL and both checksums.

    Parameters
    ----------
    remote : RemoteFileMetadata
        What to fetch and its expected checksum.
    folder : str or path-like
        Folder to store the file in (created if needed).
    n_retries : int, default=3
        Extra attempts after network errors (not after a checksum mismatch).
    delay : float, default=1.0
        Seconds to wait between attempts.
    timeout : float, default=60
        Socket timeout in seconds.

    Returns
    -------
    path : str
        Local path of the verified file.

    Raises
    ------
    OSError
        When every attempt fails, the download is incomplete or the checksum
        does not match.
    """
    _check_metadata(remote)
    folder = os.fspath(folder)
    os.makedirs(folder, exist_ok=True)
    target = os.path.join(folder, remote.filename)
    algorithm, expected = _digest_name(remote)
    expected = expected.lower()
    if os.path.isfile(target):
        if file_checksum(target, algorithm) == expected:
            return target
        os.remove(target)  # corrupted cache: fetch again
    last_error = None
    for attempt in range(n_retries + 1):
        try:
            tmp_path, got = _download_once(remote, folder, timeout)
        except (OSError, http.client.HTTPException) as exc:
            if isinstance(exc, urllib.error.HTTPError) and exc.code == 404:
                raise OSError(f"{remote.url} does not exist (HTTP 404).") from exc
            last_error = exc
            if attempt < n_retries:
                time.sleep(delay)
            continue
        if got != expected:
            _remove_quietly(tmp_path)
            raise OSError(
                f"Checksum mismatch for {remote.filename} downloaded from {remote.url}: "
                f"expected {algorithm} {expected}, got {got}. The corrupted file was "
                "removed; retry, or check the URL if this persists."
            )
        os.replace(tmp_path, target)
        return target
    raise OSError(
        f"Could not download {remote.url} after {n_retries + 1} attempt(s): "
        f"{last_error}. Any partial file was removed."
    ) from last_error


def _check_member_name(name, archive):
    if not name:
        raise ValueError(f"{archive}: archive member with an empty name.")
    for pure in (PurePosixPath(name), PureWindowsPath(name)):
        if pure.is_absolute() or pure.drive or pure.anchor:
            raise ValueError(
                f"{archive}: refusing to extract member {name!r} with an absolute path."
            )
        if ".." in pure.parts:
            raise ValueError(
                f"{archive}: refusing to extract member {name!r} that escapes the "
                "target folder ('..')."
            )


def _check_inside(dest, name, archive):
    target = (dest / name).resolve()
    if target != dest and dest not in target.parents:
        raise ValueError(
            f"{archive}: refusing to extract member {name!r} outside the target folder."
        )


@validate_params({"path": _PATH, "dest": _PATH}, prefer_skip_nested_validation=True)
def extract_archive(path, dest):
    """Safely extract a zip or tar archive (``.tar``, ``.tar.gz``, ``.tgz``, ...).

    Every member is checked before anything is written: absolute paths, drive
    letters, ``..`` components, symbolic or hard links and device files are
    rejected with a ``ValueError`` that names the member. The archive is unpacked
    into a temporary folder inside ``dest`` whose content is moved into ``dest``
    only when extraction succeeded.

    Parameters
    ----------
    path : str or path-like
        Archive to extract.
    dest : str or path-like
        Folder to extract into (created if needed).

    Returns
    -------
    names : list of str
        Top-level entries created in ``dest``.
    """
    path = os.fspath(path)
    dest = Path(os.fspath(dest))
    dest.mkdir(parents=True, exist_ok=True)
    dest = dest.resolve()
    staging = Path(tempfile.mkdtemp(prefix=".extract-", dir=dest))
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive:
                members = archive.infolist()
                for info in members:
                    _check_member_name(info.filename, path)
                    mode = info.external_attr >> 16
                    if stat.S_ISLNK(mode):
                        raise ValueError(
                            f"{path}: refusing to extract symbolic link "
                            f"{info.filename!r}."
                        )
                    _check_inside(staging, info.filename, path)
                archive.extractall(staging)
        elif tarfile.is_tarfile(path):
            with tarfile.open(path) as archive:
                members = archive.getmembers()
                for info in members:
                    _check_member_name(info.name, path)
                    if info.issym() or info.islnk():
                        raise ValueError(
                            f"{path}: refusing to extract link {info.name!r}."
                        )
                    if not (info.isfile() or info.isdir()):
                        raise ValueError(
                            f"{path}: refusing to extract special file {info.name!r}."
                        )
                    _check_inside(staging, info.name, path)
                if hasattr(tarfile, "data_filter"):
                    archive.extractall(staging, members=members, filter="data")
                else:  # pragma: no cover - Python < 3.11.4
                    archive.extractall(staging, members=members)
        else:
            raise ValueError(f"{path} is neither a zip nor a tar archive.")
        names = sorted(os.listdir(staging))
        for name in names:
            final = dest / name
            if final.is_dir() and not final.is_symlink():
                shutil.rmtree(final)
            elif final.exists() or final.is_symlink():
                final.unlink()
            os.replace(staging / name, final)
        return names
    finally:
        shutil.rmtree(staging, ignore_errors=True)
