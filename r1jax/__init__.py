"""r1jax: the DeepSeek-R1 recipe (R1-Zero, R1, distillation) in JAX."""

__version__ = "0.1.0"

COMPILATION_CACHE = "~/.cache/r1jax/xla"  # default of the CLIs' --compilation_cache
MALLOC_ARENAS = 1  # glibc malloc arenas per process (see limit_malloc_arenas)


def limit_malloc_arenas(n: int = MALLOC_ARENAS) -> bool:
  """Caps glibc's malloc arenas at `n` (glibc's default: 8 per core), as r1jax does when
  imported.

  Every thread that calls malloc is handed an arena of its own until that default is
  reached. XLA's thread pools, tensorstore's and the checkpointer's threads then leave
  freed blocks scattered over up to 16 arenas on 2 cores: in an hour of the tiny RL loop
  the process's RSS crept up by 104 MiB while its live allocations did not grow; with 2
  arenas by 56 MiB, with 1 by 5 (flat within the soak's noise), at the same CPU time per
  step (benchmarks/README.md, Soak). Threads then share one arena's lock; a host whose
  threads contend for it can raise the cap (R1JAX_MALLOC_ARENAS). Threads that already
  hold an arena keep it, so this acts when called before JAX starts its threads.

  Returns whether the cap was set: it is not where the libc has no mallopt (not glibc),
  nor where the user chose already (MALLOC_ARENA_MAX, an arena_max in GLIBC_TUNABLES, or
  R1JAX_MALLOC_ARENAS: a count, 0 = leave glibc's default).
  """
  import sys
  _, n = malloc_arena_setting(n)
  if n is None or not sys.platform.startswith("linux"):
    return False
  import ctypes
  try:
    mallopt = ctypes.CDLL(None).mallopt
  except (AttributeError, OSError):
    return False
  m_arena_max = -8  # from glibc's malloc.h
  return bool(mallopt(m_arena_max, n))


def malloc_arena_setting(n: int = MALLOC_ARENAS) -> tuple[str, int | None]:
  """(who sets the malloc arena cap, the count r1jax sets: None where it leaves glibc
  alone), from the environment as limit_malloc_arenas reads it."""
  import os
  env = os.environ
  if "MALLOC_ARENA_MAX" in env:
    return f"MALLOC_ARENA_MAX={env['MALLOC_ARENA_MAX']}", None
  if "arena_max" in env.get("GLIBC_TUNABLES", ""):
    return f"GLIBC_TUNABLES={env['GLIBC_TUNABLES']}", None
  value = env.get("R1JAX_MALLOC_ARENAS", "").strip()
  if value:
    if not value.isdigit():
      raise ValueError(f"R1JAX_MALLOC_ARENAS={value!r}: give a whole number of malloc "
                       "arenas (0 = glibc's default).")
    return f"R1JAX_MALLOC_ARENAS={value}", int(value) or None
  return f"{n} (r1jax's default)", n if n > 0 else None


def use_compilation_cache(path: str = COMPILATION_CACHE) -> None:
  """Keeps compiled programs in JAX's persistent cache at `path` ('' = off): a rerun, or
  a second stage of the same shapes, loads them instead of compiling."""
  if not path:
    return
  import os

  import jax
  jax.config.update("jax_compilation_cache_dir", os.path.expanduser(path))
  jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)


limit_malloc_arenas()
