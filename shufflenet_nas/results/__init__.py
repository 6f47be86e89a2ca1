"""What a search leaves: a study read back, its rows, Pareto front and best architectures, the artifacts."""

from shufflenet_nas._lazy import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "shufflenet_nas.results.loading": ["load_study"],
        "shufflenet_nas.results.summary": [
            "StudySummary",
            "confirm_bests",
            "remeasure_front",
            "summarise",
            "write_artifacts",
        ],
        "shufflenet_nas.results.rows": ["TrialRow", "trained_records"],
        "shufflenet_nas.results.selection": ["Selection", "select_rows"],
        "shufflenet_nas.results.export": ["ExportItem", "Exported", "export", "study_items"],
        "shufflenet_nas.results.standalone": ["standalone_source"],
        "shufflenet_nas.results.compare": ["StudyComparison", "compare_study"],
        "shufflenet_nas.results.training": ["train_rows"],
        "shufflenet_nas.results.best": ["pareto_front"],
    },
)
