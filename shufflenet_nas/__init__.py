"""shufflenet-nas: hardware-aware architecture search over the ShuffleNet V1/V2 design space.

The public API is ``__all__``: architectures as data (light to import), and the costs, latency, proxies, search
and results (imported on first use, so ``import shufflenet_nas`` does not import torch).
"""

from shufflenet_nas import nas, results
from shufflenet_nas._lazy import lazy_exports as _lazy_exports
from shufflenet_nas.errors import DeviceUnavailableError, InvalidArgumentError, ShuffleNetNASError
from shufflenet_nas.search_spaces import (
    BASELINES,
    Genotype,
    SearchSpace,
    SpaceRanges,
    StageGene,
    build_model,
    get_baseline,
    resolve_arch,
)

__version__ = "0.1.0"
_LAZY, __getattr__, __dir__ = _lazy_exports(__name__, {nas.__name__: nas.__all__, results.__name__: results.__all__})
__all__ = [
    "BASELINES",
    "DeviceUnavailableError",
    "Genotype",
    "InvalidArgumentError",
    "SearchSpace",
    "ShuffleNetNASError",
    "SpaceRanges",
    "StageGene",
    "__version__",
    "build_model",
    "get_baseline",
    "resolve_arch",
]
__all__ += _LAZY
