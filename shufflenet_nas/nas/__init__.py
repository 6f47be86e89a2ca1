"""Costs, latency, proxies, data and the search: the library behind the commands.

The public names are listed in ``__all__`` and imported on first use; the modules behind them may change.
"""

from shufflenet_nas._lazy import lazy_exports

_HOMES = {
    # costs (nas/cost.py)
    "Cost": "shufflenet_nas.nas.cost",
    "count_cost": "shufflenet_nas.nas.cost",
    "cost_breakdown": "shufflenet_nas.nas.cost",
    "cost_range": "shufflenet_nas.nas.cost",
    "estimate_memory": "shufflenet_nas.nas.cost",
    "MemoryEstimate": "shufflenet_nas.nas.cost",
    "InsufficientMemoryError": "shufflenet_nas.nas.cost",
    # latency (nas/latency/)
    "MeasureConfig": "shufflenet_nas.nas.latency",
    "LatencyResult": "shufflenet_nas.nas.latency",
    "measure_latency": "shufflenet_nas.nas.latency",
    "measure_module": "shufflenet_nas.nas.latency",
    "LatencyTable": "shufflenet_nas.nas.lut",
    # accuracy proxies and data (nas/proxies.py, nas/data.py, nas/training.py, nas/validation.py)
    "PROXY_NAMES": "shufflenet_nas.nas.proxies",
    "ProxyScore": "shufflenet_nas.nas.proxies",
    "compute_proxies": "shufflenet_nas.nas.proxies",
    "Dataset": "shufflenet_nas.nas.data",
    "load_dataset": "shufflenet_nas.nas.data",
    "TrainConfig": "shufflenet_nas.nas.training",
    "short_train": "shufflenet_nas.nas.training",
    "validate_against_paper": "shufflenet_nas.nas.validation",
    "validate_against_training": "shufflenet_nas.nas.validation",
    # the search (nas/search.py and the modules it is made of)
    "SearchConfig": "shufflenet_nas.nas.search_config",
    "run_search": "shufflenet_nas.nas.search",
    "run_workers": "shufflenet_nas.nas.search",
    "Interrupted": "shufflenet_nas.nas.interrupts",
}
__all__ = sorted(_HOMES)
__getattr__, __dir__ = lazy_exports(__name__, _HOMES)
