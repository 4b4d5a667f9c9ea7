"""Face verification without a network (raw pixels, LBP histograms, Fisherfaces), scored like a trained model, so
that every result has a floor to beat (metric.pipelines.baselines runs them)."""
