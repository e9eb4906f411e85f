"""Paper configurations: ``python -m experiments.glue --config <file>``.

Each file defines ``CONFIG`` with the values of one released script, built by
a function of :mod:`experiments.configs.recipes` that names the script's
columns. See ``docs/reproducing.md`` for the table of runs.
"""
