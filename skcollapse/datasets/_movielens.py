"""MovieLens loaders: ``fetch_movielens`` (download, verify, cache) and ``load_movielens``.

The archives are the official GroupLens ones, pinned by SHA-256 (the same digests
TensorFlow Datasets records in ``url_checksums/movielens.txt``, and for
ml-100k/ml-1m also pinned by several independent projects).
"""

from __future__ import annotations

import io
import os
import re

import numpy as np
import pandas as pd
from sklearn.utils import Bunch

from skcollapse.datasets._base import (
    _FETCH_CONSTRAINTS,
    _RETRY_PARAMS_DOC,
    RemoteFileMetadata,
    extract_archive,
    fetch_file,
    get_data_home,
)
from skcollapse.utils._docstrings import fill_doc
from skcollapse.utils._sklearn_compat import (
    StrOptions,
    int_interval,
    validate_params,
)

__all__ = ["fetch_movielens", "load_movielens", "movielens_features"]

_BASE_URL = "https://files.grouplens.org/datasets/movielens/"

#: the archive of each variant and its SHA-256 (size in bytes in the comment: the
#: archive as served by GroupLens)
_ARCHIVE_FILES = {
    # 4,924,029 bytes
    "100k": ("ml-100k.zip",
             "50d2a982c66986937beb9ffb3aa76efe955bf3d5c6b761f4e3a7cd717c6a3229"),
    # 5,917,549 bytes
    "1m": ("ml-1m.zip",
           "a6898adb50b9ca05aa231689da44c217cb524e7ebd39d264c56e2832f2c54e20"),
    # 978,202 bytes; the 2018-09-26 release of the "latest" small data set
    "latest-small": ("ml-latest-small.zip",
                     "696d65a3dfceac7c45750ad32df2c259311949efec81f0f144fdfb91ebc9e436"),
    # 198,702,078 bytes
    "20m": ("ml-20m.zip",
            "96f243c338a8665f6bcc89c53edf6ee39162a846940de6b7c8c48aeada765ff3"),
    # 261,978,986 bytes
    "25m": ("ml-25m.zip",
            "8b21cfb7eb1706b4ec0aac894368d90acf26ebdfb6aced3ebd4ad5bd1eb9c6aa"),
}
ARCHIVES = {
    variant: RemoteFileMetadata(filename=name, url=_BASE_URL + name, sha256=sha256)
    for variant, (name, sha256) in _ARCHIVE_FILES.items()
}
#: the folder each archive extracts to: its name without ``.zip``
_FOLDERS = {
    variant: name.removesuffix(".zip") for variant, (name, _) in _ARCHIVE_FILES.items()
}
_RATINGS_FILE = {
    "100k": "u.data",
    "1m": "ratings.dat",
    "latest-small": "ratings.csv",
    "20m": "ratings.csv",
    "25m": "ratings.csv",
}

_SUMMARY = {
    "100k": (
        "100,000 ratings (1-5) from 943 users on 1,682 movies, collected 1997-1998; "
        "every user rated at least 20 movies. Side information: age, gender, "
        "occupation and zip code of users; title, release date, IMDb URL and 19 "
        "genres of movies."
    ),
    "1m": (
        "1,000,209 ratings (1-5) from 6,040 users on 3,706 movies, collected in "
        "2000; every user rated at least 20 movies. Side information: gender, age "
        "group, occupation code and zip code of users; title and genres of movies."
    ),
    "latest-small": (
        "100,836 ratings (0.5-5 in half stars) from 610 users on 9,724 movies, "
        "1996-2018 (release of 2018-09-26). Side information: title, genres, "
        "IMDb/TMDb ids of movies; no user information."
    ),
    "20m": (
        "20,000,263 ratings (0.5-5 in half stars) from 138,493 users on 26,744 "
        "movies, 1995-2015. Side information: title, genres, IMDb/TMDb ids of "
        "movies; no user information."
    ),
    "25m": (
        "25,000,095 ratings (0.5-5 in half stars) from 162,541 users on 59,047 "
        "movies, 1995-2019. Side information: title, genres, IMDb/TMDb ids of "
        "movies; no user information."
    ),
}

_DESCR_TEMPLATE = """.. _movielens_{variant}_dataset:

MovieLens {variant} (GroupLens Research, University of Minnesota)
-----------------------------------------------------------------

{summary}

**Bunch fields**

- ``data``: (n_ratings, 2) int64 array of (user, item) ids, MovieLens' own
  (1-based, as in the rating file: the first row of ``u.data`` is ``196 242``);
  with ``codes=True``, 0-based codes contiguous over the users/items that have
  at least one rating instead;
- ``target``: the ratings; ``timestamp``: Unix seconds;
- ``frame`` (``as_frame=True``): DataFrame with columns user, item, rating,
  timestamp;
- ``user_info`` / ``item_info``: side information, one row per user/item of
  ``user_ids``/``item_ids``, indexed by the ids of ``data`` and with the
  MovieLens ids in ``user_id`` / ``item_id`` (``None`` when the variant has
  none);
- ``user_ids`` / ``item_ids``: the MovieLens ids that have a rating, sorted (with
  ``codes=True``: code ``c`` is ``user_ids[c]``);
- ``user_features`` / ``item_features``: categorical side features indexed like
  ``user_info``/``item_info``, i.e. by the ids of ``data``, ready for
  ``TwoTowerRecommender(user_features=..., item_features=...)`` (see
  ``movielens_features``; ``None`` when the variant has no such information).

**Licence (summary; the README in the archive is authoritative)**

GroupLens usage licence: the data may be used for research purposes only; any
publication must acknowledge the data set (citation below); it may not be
redistributed, including in a modified form, without separate permission, nor
used for commercial or revenue-bearing purposes without permission. The data
are provided "as is" without warranty. skcollapse downloads it from GroupLens
and never redistributes it.

Source: {url} (sha256 {sha256})

**Citation**

F. Maxwell Harper and Joseph A. Konstan. 2015. The MovieLens Datasets: History
and Context. ACM Transactions on Interactive Intelligent Systems (TiiS) 5, 4,
Article 19, 19 pages. https://doi.org/10.1145/2827872
"""


#: the columns (and dtypes) of MovieLens 1M's ``::``-separated files
_DAT_COLUMNS = {
    "ratings.dat": {
        "user_id": np.int64,
        "item_id": np.int64,
        "rating": np.float64,
        "timestamp": np.int64,
    },
    "movies.dat": {"item_id": np.int64, "title": str, "genres": str},
    "users.dat": {
        "user_id": np.int64,
        "gender": str,
        "age": np.int64,
        "occupation": np.int64,
        "zip_code": str,
    },
}


def _read_dat(path):
    """Read one of MovieLens 1M's ``a::b::c`` files (latin-1) fast: the C parser
    on a tab-separated copy, with the columns of :data:`_DAT_COLUMNS`."""
    columns = _DAT_COLUMNS[os.path.basename(path)]
    with open(path, encoding="latin-1") as fh:
        text = fh.read().replace("::", "\t")
    return pd.read_csv(
        io.StringIO(text),
        sep="\t",
        header=None,
        names=list(columns),
        dtype=columns,
        quoting=3,
        keep_default_na=False,
    )


def _side_file(folder, name):
    """The path of the side-information file ``name`` of ``folder``, or ``None``
    when the variant (or a copy put there by hand) does not have it."""
    path = os.path.join(folder, name)
    return path if os.path.isfile(path) else None


def _read_ratings(folder, variant):
    path = os.path.join(folder, _RATINGS_FILE[variant])
    if not os.path.isfile(path):
        raise OSError(
            f"{path} is missing: {folder!r} is not a complete MovieLens {variant} "
            "folder."
        )
    names = ["user_id", "item_id", "rating", "timestamp"]
    if variant == "100k":
        ratings = pd.read_csv(
            path, sep="\t", header=None, names=names, dtype={"rating": np.float64}
        )
    elif variant == "1m":
        ratings = _read_dat(path)
    else:
        ratings = pd.read_csv(
            path,
            dtype={
                "userId": np.int64,
                "movieId": np.int64,
                "rating": np.float64,
                "timestamp": np.int64,
            },
        )
        ratings.columns = names
    if ratings.empty:
        raise ValueError(f"{path} holds no ratings.")
    for column in ("user_id", "item_id", "timestamp"):
        if ratings[column].dtype.kind not in "iu":
            raise ValueError(f"{path}: column {column} is not integer-valued.")
    if not np.all(np.isfinite(ratings["rating"].to_numpy())):
        raise ValueError(f"{path}: ratings contain missing or non-finite values.")
    return ratings


def _read_items(folder, variant):
    if variant == "100k":
        genre_path = _side_file(folder, "u.genre")
        item_path = _side_file(folder, "u.item")
        if item_path is None:
            return None
        if genre_path is not None:
            genres = pd.read_csv(
                genre_path,
                sep="|",
                header=None,
                names=["genre", "index"],
                encoding="latin-1",
            ).dropna()
            genre_names = genres.sort_values("index")["genre"].tolist()
        else:
            genre_names = [f"genre_{i}" for i in range(19)]
        names = [
            "item_id",
            "title",
            "release_date",
            "video_release_date",
            "imdb_url",
            *genre_names,
        ]
        items = pd.read_csv(
            item_path,
            sep="|",
            header=None,
            names=names,
            encoding="latin-1",
            keep_default_na=False,
        )
        flags = items[genre_names].to_numpy().astype(bool)
        labels = np.array(genre_names, dtype=object)
        items["genres"] = ["|".join(labels[row]) for row in flags]
        return items.drop(columns=["video_release_date"])
    if variant == "1m":
        path = _side_file(folder, "movies.dat")
        return None if path is None else _read_dat(path)
    path = _side_file(folder, "movies.csv")
    if path is None:
        return None
    items = pd.read_csv(path, dtype={"movieId": np.int64, "title": str, "genres": str})
    items = items.rename(columns={"movieId": "item_id"})
    links_path = os.path.join(folder, "links.csv")
    if os.path.isfile(links_path):
        links = pd.read_csv(links_path, dtype={"imdbId": str}).rename(
            columns={"movieId": "item_id", "imdbId": "imdb_id", "tmdbId": "tmdb_id"}
        )
        items = items.merge(links, on="item_id", how="left")
    return items


def _read_users(folder, variant):
    if variant == "100k":
        path = _side_file(folder, "u.user")
        if path is None:
            return None
        return pd.read_csv(
            path,
            sep="|",
            header=None,
            names=["user_id", "age", "gender", "occupation", "zip_code"],
            dtype={"zip_code": str},
            encoding="latin-1",
        )
    if variant == "1m":
        path = _side_file(folder, "users.dat")
        return None if path is None else _read_dat(path)
    return None


def _side_info(table, ids, key, index):
    """One row per id of ``ids`` (in order), keyed by ``index`` (the ids of
    ``data``: the MovieLens ids, or codes), MovieLens' id in column ``key``."""
    if table is None:
        return None
    table = table.drop_duplicates(subset=key).set_index(key)
    table = table.reindex(ids)
    table.insert(0, key, ids)
    table.index = pd.Index(index)
    table.index.name = None
    return table


#: the age groups of MovieLens 1M (``users.dat`` stores the lower bound)
_AGE_EDGES = (18, 25, 35, 45, 50, 56)
_AGE_LABELS = ("<18", "18-24", "25-34", "35-44", "45-49", "50-55", "56+")
_YEAR = re.compile(r"\((\d{4})\)\s*$")


def _age_bucket(age):
    if pd.isna(age):
        return None
    return _AGE_LABELS[int(np.searchsorted(_AGE_EDGES, float(age), side="right"))]


def _decade(year):
    return None if year is None or pd.isna(year) else f"{int(year) // 10 * 10}s"


@validate_params(
    {
        "user_info": [pd.DataFrame, None],
        "item_info": [pd.DataFrame, None],
        "zip_digits": [int_interval(0, 5, closed="both")],
    },
    prefer_skip_nested_validation=True,
)
def movielens_features(user_info=None, item_info=None, *, zip_digits=1):
    """Categorical side features from MovieLens ``user_info`` / ``item_info``.

    Turns the side information of :func:`fetch_movielens` /
    :func:`load_movielens` into feature tables for
    :class:`~skcollapse.recommenders.TwoTowerRecommender`: every column is a
    categorical field, and the index is that of the input (the ids of the
    Bunch's ``data``), so the tables are keyed by the ids of ``X``.

    Parameters
    ----------
    user_info : DataFrame or None, default=None
        With columns ``age``, ``gender``, ``occupation``, ``zip_code`` (100k,
        1m); missing columns are skipped.
    item_info : DataFrame or None, default=None
        With ``genres`` (``"Action|Comedy"``) and a release year in
        ``release_date`` (100k, ``01-Jan-1995``) or in the title (``"Heat
        (1995)"``).
    zip_digits : int, default=1
        Leading characters of the zip code kept (the US zip's first digit is
        a region; ``0`` drops the field).

    Returns
    -------
    user_features : DataFrame or None
        ``age`` (the seven age groups of MovieLens 1M: ``"<18"``, ``"18-24"``,
        ..., ``"56+"``), ``gender``, ``occupation``, ``zip``.
    item_features : DataFrame or None
        ``genres`` (a tuple of genre names per movie: a multi-valued field;
        ``"unknown"``/``"(no genres listed)"`` give an empty tuple) and
        ``decade`` of release (``"1990s"``).

    Examples
    --------
    >>> import pandas as pd
    >>> from skcollapse.datasets import movielens_features
    >>> users = pd.DataFrame({"age": [17, 24, 60], "gender": ["F", "M", "M"],
    ...                       "occupation": ["student", "writer", "other"],
    ...                       "zip_code": ["55105", "T8H1N", "10003"]})
    >>> items = pd.DataFrame({"title": ["Heat (1995)", "Fargo (1996)"],
    ...                       "genres": ["Action|Crime", "Crime|Drama|Thriller"]})
    >>> uf, itf = movielens_features(users, items)
    >>> uf.to_dict("list")  # doctest: +NORMALIZE_WHITESPACE
    {'age': ['<18', '18-24', '56+'], 'gender': ['F', 'M', 'M'],
     'occupation': ['student', 'writer', 'other'], 'zip': ['5', 'T', '1']}
    >>> itf["genres"].tolist(), itf["decade"].tolist()
    ([('Action', 'Crime'), ('Crime', 'Drama', 'Thriller')], ['1990s', '1990s'])
    """
    user_features = item_features = None
    if user_info is not None:
        user_features = pd.DataFrame(index=user_info.index)
        if "age" in user_info:
            user_features["age"] = [_age_bucket(a) for a in user_info["age"]]
        for column in ("gender", "occupation"):
            if column in user_info:
                user_features[column] = user_info[column].to_numpy(dtype=object)
        if "zip_code" in user_info and zip_digits:
            user_features["zip"] = [
                None if pd.isna(z) else str(z)[:zip_digits].upper()
                for z in user_info["zip_code"]
            ]
    if item_info is not None:
        item_features = pd.DataFrame(index=item_info.index)
        if "genres" in item_info:
            item_features["genres"] = [
                () if pd.isna(g) else tuple(
                    x for x in str(g).split("|")
                    if x and x not in ("unknown", "(no genres listed)")
                )
                for g in item_info["genres"]
            ]
        years = None
        if "release_date" in item_info:
            years = pd.to_datetime(
                item_info["release_date"], format="%d-%b-%Y", errors="coerce"
            ).dt.year
        elif "title" in item_info:
            years = pd.Series([
                int(m.group(1)) if isinstance(t, str) and (m := _YEAR.search(t))
                else None
                for t in item_info["title"]
            ], index=item_info.index, dtype="float64")
        if years is not None:
            item_features["decade"] = [_decade(y) for y in years]
    return user_features, item_features


def _detect_variant(folder):
    for variant, filename in (
        ("100k", "u.data"),
        ("1m", "ratings.dat"),
    ):
        if os.path.isfile(os.path.join(folder, filename)):
            return variant
    if os.path.isfile(os.path.join(folder, "ratings.csv")):
        name = os.path.basename(os.path.normpath(folder))
        for variant in ("20m", "25m"):
            if name == _FOLDERS[variant]:
                return variant
        return "latest-small"
    raise OSError(
        f"{folder!r} does not look like an extracted MovieLens folder (no u.data, "
        "ratings.dat or ratings.csv)."
    )


@validate_params(
    {
        "folder": [str, os.PathLike],
        "variant": [None, StrOptions(set(ARCHIVES))],
        "return_X_y": ["boolean"],
        "as_frame": ["boolean"],
        "codes": ["boolean"],
    },
    prefer_skip_nested_validation=True,
)
def load_movielens(
    folder, *, variant=None, return_X_y=False, as_frame=False, codes=False
):
    """Load an extracted MovieLens folder (``ml-100k/``, ``ml-1m/``, ...).

    Use it for a copy already on disk; :func:`fetch_movielens` downloads,
    verifies and caches the official archive and then calls this function.

    Parameters
    ----------
    folder : str or path-like
        Folder holding ``u.data`` (100k), ``ratings.dat`` (1m) or ``ratings.csv``
        (latest-small, 20m, 25m) and, where present, the side-information files.
    variant : {"100k", "1m", "latest-small", "20m", "25m"} or None, default=None
        Format of the folder; ``None`` detects it from the files present.
    return_X_y : bool, default=False
        Return ``(data, target)`` instead of a Bunch.
    as_frame : bool, default=False
        Return pandas objects: ``frame`` becomes a DataFrame with columns
        user, item, rating, timestamp; ``data``/``target`` its slices.
    codes : bool, default=False
        Return 0-based contiguous codes (``user_ids[code]`` is the MovieLens
        id) in ``data``, ``frame`` and the index of the side tables instead of
        MovieLens' own ids, e.g. for a model with a fixed ``n_users``.

    Returns
    -------
    data : Bunch
        See :func:`fetch_movielens`.
    (data, target) : tuple if ``return_X_y`` is True

    Examples
    --------
    >>> from skcollapse.datasets import load_movielens
    >>> # skipped by the doctests: needs an extracted ml-100k folder
    >>> ml = load_movielens("ml-100k")  # doctest: +SKIP
    >>> ml.data[0], ml.item_info.loc[242, "title"]  # doctest: +SKIP
    (array([196, 242]), 'Kolya (1996)')
    """
    folder = os.fspath(folder)
    if not os.path.isdir(folder):
        raise OSError(f"{folder!r} is not an existing folder.")
    variant = _detect_variant(folder) if variant is None else variant
    ratings = _read_ratings(folder, variant)
    raw_users = ratings["user_id"].to_numpy(np.int64)
    raw_items = ratings["item_id"].to_numpy(np.int64)
    user_ids, user_codes = np.unique(raw_users, return_inverse=True)
    item_ids, item_codes = np.unique(raw_items, return_inverse=True)
    if codes:
        users, items = user_codes.astype(np.int64), item_codes.astype(np.int64)
        user_index = np.arange(user_ids.shape[0])
        item_index = np.arange(item_ids.shape[0])
    else:
        users, items = raw_users, raw_items
        user_index, item_index = user_ids, item_ids
    frame = pd.DataFrame(
        {
            "user": users,
            "item": items,
            "rating": ratings["rating"].to_numpy(np.float64),
            "timestamp": ratings["timestamp"].to_numpy(np.int64),
        }
    )
    meta = ARCHIVES[variant]
    descr = _DESCR_TEMPLATE.format(
        variant=variant, summary=_SUMMARY[variant], url=meta.url, sha256=meta.sha256
    )
    if as_frame:
        data, target = frame[["user", "item"]], frame["rating"]
    else:
        data = frame[["user", "item"]].to_numpy()
        target = frame["rating"].to_numpy()
    if return_X_y:
        return data, target
    user_info = _side_info(
        _read_users(folder, variant), user_ids, "user_id", user_index
    )
    item_info = _side_info(
        _read_items(folder, variant), item_ids, "item_id", item_index
    )
    user_features, item_features = movielens_features(user_info, item_info)
    return Bunch(
        data=data,
        target=target,
        timestamp=frame["timestamp"].to_numpy(),
        frame=frame if as_frame else None,
        user_info=user_info,
        item_info=item_info,
        user_features=user_features,
        item_features=item_features,
        user_ids=user_ids,
        item_ids=item_ids,
        n_users=int(user_ids.shape[0]),
        n_items=int(item_ids.shape[0]),
        feature_names=["user", "item"],
        target_names=["rating"],
        variant=variant,
        DESCR=descr,
    )


def _movielens_folders(variant="100k", data_home=None):
    """Where :func:`fetch_movielens` looks for an extracted copy, in order.

    ``<data_home>/movielens/<folder>`` (its own cache, where a download is
    extracted) and ``<data_home>/<folder>`` (where one puts a copy by hand),
    with ``<folder>`` the archive's folder name: ``ml-100k``, ``ml-1m``,
    ``ml-latest-small``, ``ml-20m`` or ``ml-25m``.

    Parameters
    ----------
    variant : {"100k", "1m", "latest-small", "20m", "25m"}, default="100k"
    data_home : str or path-like, default=None
        See :func:`skcollapse.datasets.get_data_home`.

    Returns
    -------
    list of str
    """
    home = get_data_home(data_home)
    name = _FOLDERS[variant]
    return [os.path.join(home, "movielens", name), os.path.join(home, name)]


def _layout(variant, folders):
    return (
        f"an extracted MovieLens {variant} folder ({_RATINGS_FILE[variant]} and the "
        f"other files of {_FOLDERS[variant]}/) in {folders[1]} or {folders[0]}"
    )


@validate_params(
    {
        "variant": [StrOptions(set(ARCHIVES))],
        **_FETCH_CONSTRAINTS,
        "return_X_y": ["boolean"],
        "as_frame": ["boolean"],
        "codes": ["boolean"],
    },
    prefer_skip_nested_validation=True,
)
@fill_doc(retries=_RETRY_PARAMS_DOC)
def fetch_movielens(
    variant="100k",
    *,
    data_home=None,
    download_if_missing=True,
    return_X_y=False,
    as_frame=False,
    codes=False,
    n_retries=3,
    delay=1.0,
):
    """Load a MovieLens data set, downloading the official archive once.

    A copy already on disk is used first: an extracted folder
    ``<data_home>/ml-100k/`` (where one puts it by hand) or
    ``<data_home>/movielens/ml-100k/`` (the cache), or the official archive
    ``ml-100k.zip`` in either place (verified against its pinned SHA-256, then
    extracted beside it); see ``_movielens_folders``. Otherwise the archive
    is fetched from GroupLens into ``<data_home>/movielens/``, verified (a
    corrupted or partial download is removed and reported with an
    ``OSError``), extracted safely, and parsed. Later calls read the extracted
    folder without network access. A failed download says where a local copy
    was looked for.

    Parameters
    ----------
    variant : {"100k", "1m", "latest-small", "20m", "25m"}, default="100k"
        Which MovieLens release. ``"latest-small"`` is pinned to the 2018-09-26
        release; if GroupLens replaces it, the checksum check fails loudly.
    data_home : str or path-like, default=None
        Cache folder; see :func:`skcollapse.datasets.get_data_home`
        (``SKCOLLAPSE_DATA`` environment variable, else ``~/skcollapse_data``).
    download_if_missing : bool, default=True
        If False, raise an ``OSError`` when the data is not on disk instead of
        downloading it.
    return_X_y : bool, default=False
        Return ``(data, target)`` instead of a Bunch.
    as_frame : bool, default=False
        Return pandas objects (``frame`` DataFrame with user, item, rating,
        timestamp; ``data`` and ``target`` as its slices).
    codes : bool, default=False
        0-based contiguous codes instead of MovieLens' ids (see
        :func:`load_movielens`).
    {retries}

    Returns
    -------
    data : Bunch
        data : ndarray or DataFrame of shape (n_ratings, 2)
            ``(user, item)`` ids as in the rating file (MovieLens ids are
            1-based: the first row of ``u.data`` is ``196 242``), or 0-based
            codes with ``codes=True``; ready for the CF recommenders (which
            learn any ids) and the splitters of :mod:`skcollapse.model_selection`.
        target : ndarray or Series of shape (n_ratings,)
            Ratings.
        timestamp : ndarray of shape (n_ratings,)
            Unix time of each rating (for temporal splits).
        frame : DataFrame or None
            All four columns, when ``as_frame=True``.
        user_info, item_info : DataFrame or None
            Side information, one row per id of ``user_ids``/``item_ids``,
            indexed by the ids of ``data``, with MovieLens' id in ``user_id``
            / ``item_id``; ``None`` where the variant has none.
        user_ids, item_ids : ndarray
            The MovieLens ids that have a rating, sorted (code ``c`` is
            ``user_ids[c]``).
        user_features, item_features : DataFrame or None
            Categorical side features indexed by the ids of ``data``
            (:func:`movielens_features`), the tables
            :class:`~skcollapse.recommenders.TwoTowerRecommender` takes.
        n_users, n_items : int
        DESCR : str
            Description with the licence terms and the citation.
    (data, target) : tuple if ``return_X_y`` is True

    Examples
    --------
    >>> from skcollapse.datasets import fetch_movielens
    >>> # skipped by the doctests: downloads MovieLens (network)
    >>> ml = fetch_movielens("100k")  # doctest: +SKIP
    >>> ml.data.shape, ml.n_users, ml.n_items  # doctest: +SKIP
    ((100000, 2), 943, 1682)
    >>> ml.data[0]  # the first row of u.data  # doctest: +SKIP
    array([196, 242])
    """
    folders = _movielens_folders(variant, data_home)
    load = {"variant": variant, "return_X_y": return_X_y, "as_frame": as_frame,
            "codes": codes}
    for folder in folders:
        if os.path.isfile(os.path.join(folder, _RATINGS_FILE[variant])):
            return load_movielens(folder, **load)
    meta = ARCHIVES[variant]
    cache, home = (os.path.dirname(f) for f in folders)
    for root in (cache, home):  # an archive put there by hand (or a past download)
        if os.path.isfile(os.path.join(root, meta.filename)):
            archive = fetch_file(meta, root, n_retries=0)  # verifies, no download
            return _extract_and_load(archive, root, variant, load,
                                     remove=root == cache)
    if not download_if_missing:
        raise OSError(
            f"MovieLens {variant} is not on disk and download_if_missing=False. "
            f"Looked for {_layout(variant, folders)}, and for {meta.filename} in "
            f"{home} or {cache}."
        )
    try:
        archive = fetch_file(meta, cache, n_retries=n_retries, delay=delay)
    except OSError as exc:
        raise OSError(
            f"could not download MovieLens {variant} ({exc}). No local copy was "
            f"found either: looked for {_layout(variant, folders)}, and for "
            f"{meta.filename} in {home} or {cache}. Put the extracted folder or "
            f"the archive (from {meta.url}) there, or pass data_home= (--data-home) "
            "naming the folder that holds it."
        ) from exc
    return _extract_and_load(archive, cache, variant, load, remove=True)


def _extract_and_load(archive, root, variant, load, *, remove):
    extract_archive(archive, root)
    if remove:
        os.remove(archive)
    folder = os.path.join(root, _FOLDERS[variant])
    if not os.path.isfile(os.path.join(folder, _RATINGS_FILE[variant])):
        raise OSError(
            f"The MovieLens {variant} archive did not contain "
            f"{_FOLDERS[variant]}/{_RATINGS_FILE[variant]}."
        )
    return load_movielens(folder, **load)
