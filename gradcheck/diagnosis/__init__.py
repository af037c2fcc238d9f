"""Diagnosis: which kind of gradient bug a mismatch shows, for both engines.

`names` holds the classes by name (the design's table, in order of precedence:
`gradcheck.DIAGNOSIS_CLASSES`); `evidence` the data a diagnosis reads and says;
`patterns` the test of each class on one draw; `classes` decides one class, once, from
every failing draw (and says why the classes are defined and ordered as they are).
`catalogue` gathers that evidence for a failing catalogue case (B and ∂f/∂z against
per-example reference Jacobians, and the case with its batch stacked twice), `user` for a
user's layer (its Jacobian read off the backward with one-hot douts).

Modules here may import `gradcheck.errors` and `gradcheck.core`, and nothing else of
gradcheck: the engines call diagnosis, never the other way round.
"""
