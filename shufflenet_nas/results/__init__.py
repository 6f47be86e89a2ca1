"""Turning a study into artifacts: summaries, Pareto fronts, reports."""
