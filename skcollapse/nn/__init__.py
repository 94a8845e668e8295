"""Plain ``torch.nn.Module`` building blocks (no skorch here)."""

from skcollapse.nn._ctr_blocks import (
    CIN,
    BilinearFusion,
    CrossNetV2,
    FinalMLPStreams,
    FMInteraction,
    FwFMPooling,
    InnerProduct,
    MLPBlock,
)
from skcollapse.nn._ctr_embedding import FieldEmbedding, FieldIndexer, FieldLinear
from skcollapse.nn._ctr_models import (
    DNN,
    FM,
    IPNN,
    CTRModel,
    DCNv2,
    FinalMLP,
    NFwFM,
    XDeepFM,
)

__all__ = [
    "CIN",
    "DNN",
    "FM",
    "IPNN",
    "BilinearFusion",
    "CTRModel",
    "CrossNetV2",
    "DCNv2",
    "FMInteraction",
    "FieldEmbedding",
    "FieldIndexer",
    "FieldLinear",
    "FinalMLP",
    "FinalMLPStreams",
    "FwFMPooling",
    "InnerProduct",
    "MLPBlock",
    "NFwFM",
    "XDeepFM",
]
