"""shufflenet-nas: hardware-aware architecture search over the ShuffleNet V1/V2 design space."""

from shufflenet_nas.search_spaces import Genotype, StageGene, build_model, resolve_arch

__version__ = "0.1.0"
__all__ = ["Genotype", "StageGene", "__version__", "build_model", "resolve_arch"]
