"""Room `report`: the one summary schema and its tables, report files, plots, the W&B logger, the sweep table, and
the evaluation report of metric.evaluate."""
