"""Anti-collapse regularizers behind one ``regularizer=`` parameter."""

from skcollapse.regularizers._base import (
    CallableRegularizer,
    Regularizer,
    get_regularizer_names,
    register_regularizer,
    resolve_regularizer,
)
from skcollapse.regularizers._dbn import DecorrelatedBatchNorm
from skcollapse.regularizers._directau import DirectAU, UniformityRegularizer
from skcollapse.regularizers._directspec import DirectSpec, DirectSpecPlus
from skcollapse.regularizers._logdet import LogDetRegularizer
from skcollapse.regularizers._resn import ReSN
from skcollapse.regularizers._spectral import CodingRate, SingularValueVariance
from skcollapse.regularizers._sync import SyncBatchRegularizer

__all__ = [
    "CallableRegularizer",
    "CodingRate",
    "DecorrelatedBatchNorm",
    "DirectAU",
    "DirectSpec",
    "DirectSpecPlus",
    "LogDetRegularizer",
    "ReSN",
    "Regularizer",
    "SingularValueVariance",
    "SyncBatchRegularizer",
    "UniformityRegularizer",
    "get_regularizer_names",
    "register_regularizer",
    "resolve_regularizer",
]
