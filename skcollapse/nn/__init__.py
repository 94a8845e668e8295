"""Plain ``torch.nn.Module`` building blocks (no skorch here)."""

from skcollapse.nn._cf_encoder import CFEncoder
from skcollapse.nn._cf_loss import CFLoss, row_scores
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
    MLP_BATCH_NORM,
    MLP_DROPOUT,
    MLP_HIDDEN_UNITS,
    CTRModel,
    DCNv2,
    DeepFM,
    FinalMLP,
    NFwFM,
    XDeepFM,
)
from skcollapse.nn._lightgcn import LightGCN, normalized_adjacency
from skcollapse.nn._mf import MatrixFactorization, SparseRowAdam, bpr_rows, bpr_step
from skcollapse.nn._two_tower import FieldBags, TwoTower

__all__ = [
    "CIN",
    "DNN",
    "FM",
    "IPNN",
    "MLP_BATCH_NORM",
    "MLP_DROPOUT",
    "MLP_HIDDEN_UNITS",
    "BilinearFusion",
    "CFEncoder",
    "CFLoss",
    "CTRModel",
    "CrossNetV2",
    "DCNv2",
    "DeepFM",
    "FMInteraction",
    "FieldBags",
    "FieldEmbedding",
    "FieldIndexer",
    "FieldLinear",
    "FinalMLP",
    "FinalMLPStreams",
    "FwFMPooling",
    "InnerProduct",
    "LightGCN",
    "MLPBlock",
    "MatrixFactorization",
    "NFwFM",
    "SparseRowAdam",
    "TwoTower",
    "XDeepFM",
    "bpr_rows",
    "bpr_step",
    "normalized_adjacency",
    "row_scores",
]
