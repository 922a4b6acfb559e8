"""Pure-functional decoder: dense (GQA) or DeepSeek-V3 style (MLA + DeepSeekMoE)."""

from r1jax.model.transformer import (Aux, ParamSpec, apply, cache_axes, cache_specs, forward,
                                     init_cache, init_params, layer_counts, param_axes,
                                     param_specs)

__all__ = ["Aux", "ParamSpec", "apply", "cache_axes", "cache_specs", "forward", "init_cache",
           "init_params", "layer_counts", "param_axes", "param_specs"]
