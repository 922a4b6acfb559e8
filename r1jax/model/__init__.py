"""Pure-functional decoder: dense (GQA) or DeepSeek-V3 style (MLA + DeepSeekMoE)."""

from r1jax.model.transformer import (Aux, ParamSpec, apply, cache_axes, cache_specs, forward,
                                     fuse_projections, init_cache, init_params, layer_counts,
                                     logits_from_hidden, param_axes, param_specs, rope_tables,
                                     target_logprobs, unstack_layers)

__all__ = ["Aux", "ParamSpec", "apply", "cache_axes", "cache_specs", "forward",
           "fuse_projections", "init_cache", "init_params", "layer_counts",
           "logits_from_hidden", "param_axes", "param_specs", "rope_tables", "target_logprobs",
           "unstack_layers"]
