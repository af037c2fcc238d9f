"""The bug zoo of issue 17: wrong backward passes re-created from public issue trackers and
textbooks, each with its correct twin and the diagnosis class it should get.

`tests.zoo.bugs.ZOO` holds the entries (data only), `tests.zoo.runner` checks them through
the public API (`import gradcheck`), and `python -m tests.zoo.measure` prints the accuracy
table of the diagnosis.
"""
