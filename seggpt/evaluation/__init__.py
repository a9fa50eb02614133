"""Evaluation: in-context metrics with prompt-ignoring baselines, the held-out transfer sets,
episodic few-shot benchmarks and DAVIS video scores."""
