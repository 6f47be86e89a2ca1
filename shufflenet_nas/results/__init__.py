"""What a search leaves: reading a study, its Pareto front and best architectures, the artifacts written.

The public names are listed in ``__all__`` and imported on first use; the modules behind them may change.
"""

from shufflenet_nas._lazy import lazy_exports

_HOMES = {
    "load_study": "shufflenet_nas.results.loading",
    "StudySummary": "shufflenet_nas.results.summary",
    "summarise": "shufflenet_nas.results.summary",
    "write_artifacts": "shufflenet_nas.results.summary",
    "remeasure_front": "shufflenet_nas.results.summary",
    "TrialRow": "shufflenet_nas.results.rows",
    "pareto_front": "shufflenet_nas.results.best",
}
__all__ = sorted(_HOMES)
__getattr__, __dir__ = lazy_exports(__name__, _HOMES)
