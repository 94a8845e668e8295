"""Synthetic generators (``make_*``) and real-data loaders (``fetch_*``/``load_*``)."""

from skcollapse.datasets._base import (
    RemoteFileMetadata,
    clear_data_home,
    extract_archive,
    fetch_file,
    get_data_home,
)
from skcollapse.datasets._criteo import bucketize_numeric, load_avazu, load_criteo
from skcollapse.datasets._ctr import make_ctr
from skcollapse.datasets._embeddings import make_collapsed_embeddings
from skcollapse.datasets._interactions import make_interactions
from skcollapse.datasets._libfm import load_libfm
from skcollapse.datasets._lightgcn import (
    fetch_lightgcn,
    load_lightgcn,
    read_lightgcn_file,
)
from skcollapse.datasets._movielens import (
    fetch_movielens,
    load_movielens,
    movielens_features,
)

__all__ = [
    "RemoteFileMetadata",
    "bucketize_numeric",
    "clear_data_home",
    "extract_archive",
    "fetch_file",
    "fetch_lightgcn",
    "fetch_movielens",
    "get_data_home",
    "load_avazu",
    "load_criteo",
    "load_libfm",
    "load_lightgcn",
    "load_movielens",
    "make_collapsed_embeddings",
    "make_ctr",
    "make_interactions",
    "movielens_features",
    "read_lightgcn_file",
]
