"""Training: train state and step, GRPO, SFT, checkpoints, metrics."""
