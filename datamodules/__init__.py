"""Data, in the order it flows: files -> records -> identity-disjoint split -> lossless cache -> P x K batches.

The concrete datasets live in `datamodules.sources`; this package imports nothing from `metric` but its
error leaf (`metric.errors`).
"""
