"""The nets (timm backbone -> projection -> L2 norm, MobileFaceNet, outside embedders, the liveness net), the
logistic-distance head, and the checkpoint format that rebuilds them."""
