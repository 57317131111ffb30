"""Maximum likelihood: start values, EM refinement, Newton-Raphson, variance estimators."""
