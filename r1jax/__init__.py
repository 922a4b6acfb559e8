"""r1jax: the DeepSeek-R1 recipe (R1-Zero, R1, distillation) in JAX."""

__version__ = "0.1.0"

COMPILATION_CACHE = "~/.cache/r1jax/xla"  # default of the CLIs' --compilation_cache


def use_compilation_cache(path: str = COMPILATION_CACHE) -> None:
  """Keeps compiled programs in JAX's persistent cache at `path` ('' = off): a rerun, or
  a second stage of the same shapes, loads them instead of compiling."""
  if not path:
    return
  import os

  import jax
  jax.config.update("jax_compilation_cache_dir", os.path.expanduser(path))
  jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
