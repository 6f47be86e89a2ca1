"""The ShuffleNet V2 paper's guidelines G1-G4 reproduced on the user's device.

G1 equal channel widths minimise memory access cost; G2 excessive group convolution increases it; G3 network
fragmentation reduces parallelism; G4 element-wise operations are not negligible. The paper's validation tables
(Tables 1-4: stacks of 10 blocks on 56x56 features, widths x1 / x2 / x4) are data in ``configs``; ``run_guidelines``
times each table's rows interleaved on a ``MeasureConfig``'s device and decides each guideline from a time ratio
and its 95% interval (``verdicts``); ``write_report`` writes the charts and ``guidelines.md``; ``store_result`` keeps
each device's latest run for ``search --explain`` (``stored_result``). Public names are
imported on first use: importing this package does not import torch.
"""

from shufflenet_nas._lazy import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "shufflenet_nas.guidelines.configs": [
            "BLOCKS",
            "GUIDELINES",
            "PAPER_SETUPS",
            "RESOLUTION",
            "WIDTHS",
            "BlockSpec",
            "Guideline",
            "PaperSetup",
            "Row",
            "paper_setup",
        ],
        "shufflenet_nas.guidelines.cost": ["StackCost", "conv_cost", "stack_cost"],
        "shufflenet_nas.guidelines.verdicts": [
            "DOES_NOT_HOLD",
            "HOLDS",
            "INCONCLUSIVE",
            "VERDICTS",
            "overall_verdict",
            "verdict",
        ],
        "shufflenet_nas.guidelines.result": ["GuidelineResult", "GuidelinesResult", "RowResult", "TableResult"],
        "shufflenet_nas.guidelines.measure": ["run_guidelines"],
        "shufflenet_nas.guidelines.blocks": ["build_block", "build_stack"],
        "shufflenet_nas.guidelines.report": ["guidelines_markdown", "write_charts", "write_report"],
        "shufflenet_nas.guidelines.store": ["store_result", "stored_result"],
    },
)
