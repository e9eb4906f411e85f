"""Run configurations of :mod:`experiments.run`, one file per run.

Each file defines ``get_config()`` returning the keys of
:class:`experiments.config.RunConfig` that differ from the defaults, and
says in its docstring the command that runs it. ``demo.py`` (what
``make demo`` runs), ``text.py`` / ``image.py`` (your own data), and the
papers' configurations under ``platon/``, ``mgpp/``, ``seven/``,
``pins/`` (built by :mod:`experiments.configs.recipes`) and ``vit/``.
"""
