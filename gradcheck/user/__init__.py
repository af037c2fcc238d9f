"""The user engine: checking a user's own forward and backward (`check_backward`,
`check_backward_cached`, `check_layer_object`, `check_unit_jacobian`, in `api`).

The path of one check, module by module: `options` and `signature` validate what the
user passed; `adapters` turn the four styles into one functional layer (`types`);
`draw` decodes hypothesis's bytes into a case; `calls` runs user code safely (timeouts,
mutation, aliasing, determinism); `oracles` computes the references (autograd, finite
differences) and `compare` holds the gradients against them; `engine` checks one example
and `run` drives the search, shrinking and diagnosis; `summary` is what one check found.

Modules here may import `gradcheck.errors`, `gradcheck.core`, `gradcheck.diagnosis` and
`gradcheck.report` (a summary carries report cells), and nothing of the catalogue or the
entry points.
"""
