"""Room `model`: the nets (timm backbone -> projection -> L2 norm), the logistic-distance head, and the checkpoint
format that rebuilds them."""
