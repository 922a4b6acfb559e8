"""r1jax: the DeepSeek-R1 recipe (R1-Zero, R1, distillation) in JAX."""

__version__ = "0.1.0"
