"""Building blocks shared by the families (import the submodule you need; nothing is imported here).

* :mod:`~worldflux.nn.layers`: initialisers, RMSNorm/LayerNorm + linear + activation blocks,
  MLPs, block-diagonal and ensemble linear layers, SimNorm.
* :mod:`~worldflux.nn.conv`: 'same' and fused upsampling convolutions, conv stacks, random shift.
* :mod:`~worldflux.nn.distributions`: unimix categoricals, bounded normal, squashed Gaussian,
  two-hot bins and losses; :mod:`~worldflux.nn.functional`: symlog, symexp, two-hot encoding.
* :mod:`~worldflux.nn.ema`: EMA copies of modules (slow critics, target networks).
* :mod:`~worldflux.nn.transformer`: attention on ``scaled_dot_product_attention`` with causal and
  frame-causal masks, learned/sinusoidal/rotary positions, adaLN-Zero and a KV cache.
* :mod:`~worldflux.nn.vit`: patch and tubelet embeddings with 2-D/3-D sincos positions.
* :mod:`~worldflux.nn.unet`: conditioned U-Net blocks (adaptive GroupNorm, attention).
* :mod:`~worldflux.nn.encoders`: the observation-encoder contract of the shared ``encoder`` slot.
* :mod:`~worldflux.nn.fused`: fused autograd functions for memory-bound CPU steps.
"""
