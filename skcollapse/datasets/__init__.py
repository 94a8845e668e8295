"""Synthetic generators (``make_*``) and real-data loaders (``fetch_*``/``load_*``)."""

from skcollapse.datasets._ctr import make_ctr
from skcollapse.datasets._embeddings import make_collapsed_embeddings
from skcollapse.datasets._libfm import load_libfm

__all__ = ["load_libfm", "make_collapsed_embeddings", "make_ctr"]
