"""The core both engines share: the error model and the seed's identity, free of I/O,
hypothesis and pytest.

- `tolerance` gathers the error model: `rounding` (u, γ_m, η, the bound between two
  evaluations of A), `tracked` (arrays that carry an error bound), `ufunc_rules` and
  `array_rules` (one rule per numpy function), `expansions` (error factors of outer
  products), `events` (kinks and ties met on the way);
- `compact`: A = δ ⊙ B and the dense block-diagonal product it must equal;
- `oracles`: references with their own error bounds (autograd, the catalogue's layouts of
  finite differences); `differences`: the stencil and its error model both engines
  difference through; `probes`: directional differences along random signed directions
  and the bound of ⟨g, w⟩, for arguments too large to difference entry by entry;
- `results` (plain data: verdicts, comparisons, results, worst entries) and `comparison`
  (holding a gradient against a reference under a bound);
- `values`: the bytes-to-sizes-and-values decoding every drawn case shares.

Modules here may import numpy, scipy, autograd, `gradcheck.errors` and each other, and
nothing else of gradcheck.
"""
