"""Face verification by metric learning. Packages, lowest first (a lower package never imports a higher one;
import-linter checks it, see docs/architecture.md):

errors, registry, config_factory (shared leaves) -> datamodules -> model -> metrics -> scoring -> report -> attacks
-> losses -> training -> modules | deploy | baselines -> pipelines -> cli -> the `python -m metric.<entry>` entry
points.
"""
