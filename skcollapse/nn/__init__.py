"""Plain ``torch.nn.Module`` building blocks (no skorch here).

Each module names its public objects once, in its own ``__all__``; the package
re-exports them all, so a new block is made public where it is defined.
"""

from skcollapse.nn import (
    _cf_encoder,
    _cf_loss,
    _ctr_blocks,
    _ctr_embedding,
    _ctr_models,
    _lightgcn,
    _mf,
    _two_tower,
)
from skcollapse.nn._cf_encoder import *
from skcollapse.nn._cf_loss import *
from skcollapse.nn._ctr_blocks import *
from skcollapse.nn._ctr_embedding import *
from skcollapse.nn._ctr_models import *
from skcollapse.nn._lightgcn import *
from skcollapse.nn._mf import *
from skcollapse.nn._two_tower import *

__all__ = (
    _cf_encoder.__all__ + _cf_loss.__all__ + _ctr_blocks.__all__
    + _ctr_embedding.__all__ + _ctr_models.__all__ + _lightgcn.__all__ + _mf.__all__
    + _two_tower.__all__
)
