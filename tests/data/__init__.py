"""Tests of r1jax.data."""
