"""Room `modules`: the LightningModules and their objectives (metric losses, the siamese pair head, distillation,
adversarial training), multi-process helpers, and `training`, the whole metric.train run."""
