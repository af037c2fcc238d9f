"""The field corpus of issue 14: real NumPy network libraries checked by gradcheck
(outcomes in docs/field.md)."""
