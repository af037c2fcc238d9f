"""The user engine: checking a user's own forward and backward (`check_backward`,
`check_backward_cached`, `check_layer_object`, `check_unit_jacobian`, in `api`).

The path of one check, module by module: `options` and `signature` validate what the
user passed (`expressions` parses sizes such as h-p+1 and constraints such as h >= p);
`adapters` turn the four styles into one functional layer (`types`); `sizes` enumerates
the sizes that meet every constraint and `draw` decodes hypothesis's bytes into a case
(`example` reads a given one); `calls` runs user code safely (timeouts, mutation,
aliasing, determinism) and `outputs` joins several outputs into one; `bounds` bounds
the code's rounding; `oracles` computes the references (autograd, finite differences)
and `compare` holds the gradients against them; `engine` checks one example and `run`
drives the search, shrinking and diagnosis, `reproduce` writes the snippet that checks a
failure again; `summary` is what one check found.

Modules here may import `gradcheck.errors`, `gradcheck.core`, `gradcheck.diagnosis` and
`gradcheck.report` (a summary carries report cells), and nothing of the catalogue or the
entry points.
"""
