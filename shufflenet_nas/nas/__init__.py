"""Costs, latency, proxies, data and the search: the library behind the commands (public names in ``__all__``,
each imported on first use)."""

from shufflenet_nas._lazy import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "shufflenet_nas.nas.cost": [
            "Cost",
            "InsufficientMemoryError",
            "MemoryEstimate",
            "cost_breakdown",
            "cost_range",
            "count_cost",
            "estimate_memory",
        ],
        "shufflenet_nas.nas.latency": [
            "Interleaved",
            "LatencyResult",
            "MeasureConfig",
            "measure_interleaved",
            "measure_latency",
            "measure_module",
        ],
        "shufflenet_nas.nas.lut": ["LatencyTable"],
        "shufflenet_nas.nas.explain": ["Explanation", "compare_to_reference", "explain", "measured_elementwise_share"],
        "shufflenet_nas.nas.proxies": ["PROXY_NAMES", "ProxyScore", "compute_proxies"],
        "shufflenet_nas.nas.data": ["Dataset", "load_dataset"],
        "shufflenet_nas.nas.short_training": ["TrainConfig", "short_train"],
        "shufflenet_nas.nas.training": ["TrainRecipe"],
        "shufflenet_nas.nas.train_architecture": ["TrainedModel", "train_architecture"],
        "shufflenet_nas.nas.validation": [
            "validate_against_paper",
            "validate_against_results",
            "validate_against_training",
        ],
        "shufflenet_nas.nas.search_config": ["SearchConfig"],
        "shufflenet_nas.nas.search": ["run_search", "run_workers"],
        "shufflenet_nas.nas.interrupts": ["Interrupted"],
    },
)
