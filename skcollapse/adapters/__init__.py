"""Read the embedding tables of models trained elsewhere (implicit, RecBole,
TorchRec, any torch module or state dict) into the ``get_embeddings()`` dict.

The libraries themselves are optional: files are read with torch alone, and an
``implicit`` model is read through its attributes.
"""

from skcollapse.adapters._extract import (
    EmbeddingTables,
    checkpoint_kind,
    extract_embeddings,
    load_checkpoint,
)

__all__ = ["EmbeddingTables", "checkpoint_kind", "extract_embeddings", "load_checkpoint"]
