"""Room `scoring`: the one embedding loop, the matchers that turn two embeddings into a score, the one pair builder,
and `load_for_eval`, which gives any entry point a checkpoint's net, matcher and data in one call."""
