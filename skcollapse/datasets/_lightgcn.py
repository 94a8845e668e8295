"""The LightGCN/NGCF split format: ``train.txt`` / ``test.txt``, one user per line.

Each line is ``user item item ...`` (space separated, 0-based remapped ids); the
split published with NGCF (Wang et al., SIGIR 2019) and LightGCN (He et al.,
SIGIR 2020) for Gowalla, Yelp2018 and Amazon-book, also used by BARS
(``*_m1``) and DirectSpec.
"""

from __future__ import annotations

import os

import numpy as np
from sklearn.utils import Bunch

from skcollapse.datasets._base import (
    _FETCH_CONSTRAINTS,
    _RETRY_PARAMS_DOC,
    RemoteFileMetadata,
    fetch_file,
    get_data_home,
)
from skcollapse.utils._docstrings import fill_doc
from skcollapse.utils._sklearn_compat import (
    StrOptions,
    int_interval,
    validate_params,
)

__all__ = ["fetch_lightgcn", "load_lightgcn", "read_lightgcn_file"]

# The LightGCN authors' repository at a fixed commit: raw URLs at a commit never change.
_COMMIT = "b067ec05f16a24e0e1efe63cd82385f0c469af20"
_RAW = f"https://raw.githubusercontent.com/kuandeng/LightGCN/{_COMMIT}/Data/"

# sha256 computed on byte-exact copies whose md5 equals the digests published in
# reczoo/Datasets (Gowalla_m1, Yelp18_m1, AmazonBooks_m1). For the two train.txt
# files no byte-exact copy was available to hash, so they are pinned by the md5
# published there (weaker than sha256 but still detects corruption).
_FILES = {
    "gowalla": {
        "train.txt": {
            "sha256": "7244696fdeb23911319cf7b689f2e15a3c4c92549c873a5677b44e3f13cc3e62"
        },
        "test.txt": {
            "sha256": "099a2a73924e4b754dc6efd730d764f492321b53c38eb93298850c83acf57be3"
        },
    },
    "yelp2018": {
        "train.txt": {"sha256": None, "md5": "1b8b5d22a227e01d6de002c53d32b4c4"},
        "test.txt": {
            "sha256": "9cd9b37926cd1447a06625ffa7914527573fb097c10cb0bbdb1d1b8ded3742fe"
        },
    },
    "amazon-book": {
        "train.txt": {"sha256": None, "md5": "c916ecac04ca72300a016228258b41ed"},
        "test.txt": {
            "sha256": "6250754994dd953b91b48dccdd77a73f318e0634b4757c2abfcc9d33a54ab0f5"
        },
    },
}

_STATS = {
    "gowalla": "29,858 users, 40,981 items, 810,128 train / 217,242 test interactions",
    "yelp2018": "31,668 users, 38,048 items, 1,237,259 train / 324,147 test",
    "amazon-book": "52,643 users, 91,599 items, 2,380,730 train / 603,378 test",
}

_DESCR = """.. _lightgcn_{name}_dataset:

{name} (LightGCN / NGCF split)
------------------------------

{stats}. Each user's interactions are split 80/20 at random into train and test
(NGCF/LightGCN protocol, 10-core filtering); ids are remapped to 0..n-1.
Evaluation protocol of the papers: rank all items not in the user's training
set, report Recall@20 and NDCG@20 (embedding size 64).

**Bunch fields**: ``train`` and ``test`` (n, 2) int64 arrays of (user, item)
pairs, ``n_users``, ``n_items``.

**Sources and licence**: split files of the LightGCN authors
(https://github.com/kuandeng/LightGCN, commit {commit}); no licence is stated
there. Underlying data: Gowalla check-ins (SNAP loc-gowalla), the Yelp 2018
challenge data (Yelp dataset terms: non-commercial, academic use) and Amazon
review data (McAuley et al.). Cite the data source and:

Xiangnan He, Kuan Deng, Xiang Wang, Yan Li, Yongdong Zhang and Meng Wang. 2020.
LightGCN: Simplifying and Powering Graph Convolution Network for
Recommendation. SIGIR 2020. https://doi.org/10.1145/3397271.3401063

Xiang Wang, Xiangnan He, Meng Wang, Fuli Feng and Tat-Seng Chua. 2019. Neural
Graph Collaborative Filtering. SIGIR 2019. https://doi.org/10.1145/3331184.3331267
"""


@validate_params({"path": [str, os.PathLike]}, prefer_skip_nested_validation=True)
def read_lightgcn_file(path):
    """Read one LightGCN-format file into (user, item) pairs.

    Parameters
    ----------
    path : str or path-like
        File with one ``user item item ...`` line per user. Lines holding only a
        user id (no items) and blank lines are allowed.

    Returns
    -------
    pairs : ndarray of shape (n_interactions, 2), dtype int64
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise OSError(f"{path!r} is not an existing file.")
    with open(path, encoding="ascii", errors="strict") as fh:
        rows = [line.split() for line in fh]
    rows = [row for row in rows if row]
    if not rows:
        return np.zeros((0, 2), dtype=np.int64)
    lengths = np.fromiter((len(row) for row in rows), dtype=np.int64, count=len(rows))
    tokens = [token for row in rows for token in row]
    try:
        values = np.array(tokens, dtype=np.int64)
    except ValueError:
        bad = next(i for i, row in enumerate(rows) for t in row if not _is_int(t))
        raise ValueError(
            f"{path}: line {bad + 1} holds a token that is not an integer id."
        ) from None
    if values.min() < 0:
        raise ValueError(f"{path}: negative user or item id.")
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    users = values[starts]
    is_item = np.ones(values.shape[0], dtype=bool)
    is_item[starts] = False
    pairs = np.column_stack([np.repeat(users, lengths - 1), values[is_item]])
    return pairs


def _is_int(token):
    try:
        int(token)
    except ValueError:
        return False
    return True


@validate_params(
    {
        "folder": [str, os.PathLike],
        "n_users": [None, int_interval(1, None, closed="left")],
        "n_items": [None, int_interval(1, None, closed="left")],
    },
    prefer_skip_nested_validation=True,
)
def load_lightgcn(folder, *, n_users=None, n_items=None):
    """Load a LightGCN-format split (``train.txt`` and ``test.txt``) from a folder.

    Parameters
    ----------
    folder : str or path-like
        Folder with ``train.txt`` and ``test.txt`` (``user_list.txt`` and
        ``item_list.txt``, when present, fix the number of users and items and
        give the original ids).
    n_users, n_items : int or None, default=None
        Override the sizes; by default from the id lists, else max id + 1.

    Returns
    -------
    data : Bunch
        train, test : ndarray of shape (n, 2), dtype int64
            (user, item) pairs.
        n_users, n_items : int
        user_org_ids, item_org_ids : ndarray or None
            Original ids from ``user_list.txt`` / ``item_list.txt``.
        DESCR : str

    Examples
    --------
    >>> from skcollapse.datasets import load_lightgcn
    >>> # skipped by the doctests: needs the LightGCN Gowalla files
    >>> data = load_lightgcn("../shared/eval-data/gowalla")  # doctest: +SKIP
    >>> data.train.shape, data.n_users, data.n_items  # doctest: +SKIP
    ((810128, 2), 29858, 40981)
    """
    folder = os.fspath(folder)
    if not os.path.isdir(folder):
        raise OSError(f"{folder!r} is not an existing folder.")
    missing = [
        name
        for name in ("train.txt", "test.txt")
        if not os.path.isfile(os.path.join(folder, name))
    ]
    if missing:
        raise OSError(
            f"{folder!r} lacks {', '.join(missing)}; a LightGCN split needs both "
            "train.txt and test.txt."
        )
    train = read_lightgcn_file(os.path.join(folder, "train.txt"))
    test = read_lightgcn_file(os.path.join(folder, "test.txt"))
    if train.shape[0] == 0:
        raise ValueError(f"{folder}/train.txt holds no interactions.")
    user_org = _read_id_list(os.path.join(folder, "user_list.txt"))
    item_org = _read_id_list(os.path.join(folder, "item_list.txt"))
    both = np.concatenate([train, test]) if test.size else train
    max_user, max_item = (int(v) for v in both.max(axis=0))
    n_users = _size(n_users, user_org, max_user, "n_users")
    n_items = _size(n_items, item_org, max_item, "n_items")
    name = os.path.basename(os.path.normpath(folder))
    descr = _DESCR.format(
        name=name,
        stats=_STATS.get(
            name,
            f"{n_users} users, {n_items} items, {train.shape[0]} train / "
            f"{test.shape[0]} test interactions",
        ),
        commit=_COMMIT,
    )
    return Bunch(
        train=train,
        test=test,
        n_users=n_users,
        n_items=n_items,
        user_org_ids=user_org,
        item_org_ids=item_org,
        DESCR=descr,
    )


def _read_id_list(path):
    if not os.path.isfile(path):
        return None
    table = np.loadtxt(path, dtype=str, skiprows=1, ndmin=2)
    if table.shape[1] < 2:
        raise ValueError(f"{path}: expected 'org_id remap_id' columns.")
    remap = table[:, -1].astype(np.int64)
    org = np.empty(remap.shape[0], dtype=object)
    if remap.shape[0] and (remap.min() < 0 or remap.max() >= remap.shape[0]):
        raise ValueError(f"{path}: remap ids are not 0..n-1.")
    org[remap] = table[:, 0]
    return org


def _size(given, org_ids, max_id, name):
    inferred = org_ids.shape[0] if org_ids is not None else max_id + 1
    if given is None:
        if inferred <= max_id:
            raise ValueError(
                f"The id list gives {name}={inferred} but the split uses id {max_id}."
            )
        return int(inferred)
    if given <= max_id:
        raise ValueError(f"{name}={given} is too small: the split uses id {max_id}.")
    return int(given)


@validate_params(
    {"dataset": [StrOptions(set(_FILES))], **_FETCH_CONSTRAINTS},
    prefer_skip_nested_validation=True,
)
@fill_doc(retries=_RETRY_PARAMS_DOC)
def fetch_lightgcn(
    dataset="gowalla",
    *,
    data_home=None,
    download_if_missing=True,
    n_retries=3,
    delay=1.0,
):
    """Download (once) and load a LightGCN split: Gowalla, Yelp2018 or Amazon-book.

    Files come from the LightGCN authors' repository at a fixed commit and are
    verified against pinned checksums before use (SHA-256; MD5 for the Yelp2018
    and Amazon-book ``train.txt``, the only digests published for them). A copy
    already on disk is used first: ``<data_home>/<dataset>/`` (where one puts it
    by hand) or ``<data_home>/lightgcn/<dataset>/`` (the cache), each holding
    ``train.txt`` and ``test.txt``; files put there by hand are read as they
    are (:func:`load_lightgcn`), the cache is checked against the checksums.

    Parameters
    ----------
    dataset : {"gowalla", "yelp2018", "amazon-book"}, default="gowalla"
    data_home : str or path-like, default=None
        Cache folder; see :func:`skcollapse.datasets.get_data_home`.
    download_if_missing : bool, default=True
        If False, raise an ``OSError`` when the files are not on disk.
    {retries}

    Returns
    -------
    data : Bunch
        See :func:`load_lightgcn`; the ids are those of the files.
    """
    home = get_data_home(data_home)
    cache = os.path.join(home, "lightgcn", dataset)
    by_hand = os.path.join(home, dataset)
    names = tuple(_FILES[dataset])
    if all(os.path.isfile(os.path.join(by_hand, n)) for n in names):
        return load_lightgcn(by_hand)
    where = (
        f"looked for {' and '.join(names)} in {by_hand} (a copy put there by hand) "
        f"and in {cache} (the cache)"
    )
    for filename, digests in _FILES[dataset].items():
        path = os.path.join(cache, filename)
        if not os.path.isfile(path) and not download_if_missing:
            raise OSError(
                f"{dataset} {filename} is not on disk and download_if_missing=False: "
                f"{where}."
            )
        remote = RemoteFileMetadata(
            filename=filename, url=f"{_RAW}{dataset}/{filename}", **digests
        )
        try:
            fetch_file(remote, cache, n_retries=n_retries, delay=delay)
        except OSError as exc:
            raise OSError(
                f"could not download {dataset} {filename} ({exc}). No local copy "
                f"was found either: {where}. Put the files there, or pass "
                "data_home= naming the folder that holds them."
            ) from exc
    return load_lightgcn(cache)
