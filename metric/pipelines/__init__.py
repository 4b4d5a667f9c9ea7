"""Pipelines: each composes the packages below it for one job (train, evaluate, calibrate, attack, export,
baselines, self-training, liveness, fine-tuning, the attack and sweep reports) and decides which files and
checkpoints are read and written."""
