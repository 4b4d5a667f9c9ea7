"""The LightningModules, and only them: metric loss, siamese pair head, distillation, adapt (a head on a frozen
embedder) and liveness, on one shared base. Each checks the composed config it trains with (`check_config`)."""
