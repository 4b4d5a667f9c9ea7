"""From images to scores: the one embedding loop, the matchers that turn two embeddings into a score, the one pair
builder, the score grid, evaluation protocols, and `load_for_eval`, which gives a pipeline a checkpoint's net, matcher
and data in one call."""
