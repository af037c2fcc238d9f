"""Diagnosis: which kind of gradient bug a mismatch shows, for both engines.

`classes` holds the classes (the design's table, in order of precedence) and decides one
from the evidence; `catalogue` gathers that evidence for a failing catalogue case (B and
∂f/∂z against per-example reference Jacobians), `user` for a user's layer (its Jacobian
read off the backward with one-hot douts).

Modules here may import `gradcheck.errors` and `gradcheck.core`, and nothing else of
gradcheck: the engines call diagnosis, never the other way round.
"""
