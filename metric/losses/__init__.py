"""Loss terms that pytorch-metric-learning does not have: identity-classification losses, the mixed-sample term,
adversarial training."""
