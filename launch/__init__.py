"""Launchers for r1jax runs: Cloud TPU VM slices, SLURM GPU clusters, this machine."""
