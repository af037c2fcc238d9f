"""The catalogue engine: the built-in layers, and the checker of cases drawn from them.

- the tables: `activations` (φ and φ'), `layers` (the layer types: forward, B, ∂f/∂z;
  with `layer_type`, the row's record and shape check, `coupled_layers`, the coupled
  controls' rules, `affine`, the algebra rows share, and `kinks`, placing cases clear of
  kinks), `losses`, and `network` (a stack of layers with a loss, backprop as a recursion);
- the checker of one layer: `checker` (the front door: check, check_many, check_large),
  `cases` (a Case and the options, validated), `hand_written` (B, ∂f/∂z, A, δ_in with
  their bounds) and `verdicts`, shared by its two paths: `stacked` (many small cases in
  one vectorised pass) and `large` (one big layer block by block of units, with
  `blockwise` and `block_differences`);
- the checker of networks: `network_checker` (the front door), `network_comparisons`
  (every layer against every oracle), `network_results` (the results and the blame);
- `reproduce`: the snippet that rebuilds a case and checks it.

Modules here may import `gradcheck.errors`, `gradcheck.core` and `gradcheck.diagnosis`,
and each other without a cycle; nothing above (user, report, strategies, the entry
points). This __init__ imports nothing, so that importing one module loads only it.
"""
