"""The field corpus: third-party NumPy libraries checked through gradcheck's public API.

Every test here carries the ``field`` marker (registered in pyproject.toml; the default
run leaves it out, `.ci/run` runs it after the default suite); each module skips when
its library is not installed (``pip install -e '.[field]'``; npdl needs
``pip install --no-build-isolation npdl==0.4.0.1``, its setup.py imports numpy).
"""
