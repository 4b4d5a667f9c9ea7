"""Writes what it is given: the one summary schema and its tables, report files, plots, the W&B logger, the sweep
table and the attack report."""
