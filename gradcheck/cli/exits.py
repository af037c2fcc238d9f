"""The command's exit codes, as pytest's: 0 all passed, 1 mismatches found, 2 interrupted,
3 internal error, 4 usage error, 5 nothing was checked.

Apart from `output` so that the parser can name them without loading the report package.
"""

OK, MISMATCH, INTERRUPTED, INTERNAL_ERROR, USAGE_ERROR, NOTHING_CHECKED = range(6)
