"""Synthetic generators (``make_*``) and real-data loaders (``fetch_*``/``load_*``)."""

__all__ = []
