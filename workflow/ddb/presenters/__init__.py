"""What ``ddb inspect`` prints: each step's line of the overview and its ``--step`` table, registered per step
(:mod:`ddb.presenters.registry`), the overview around them (:mod:`ddb.presenters.overview`) and one sample
followed through every step (:mod:`ddb.presenters.trace`). All of it reads through :mod:`ddb.results`; the
report (``ddb.visualize``) does not import this package, so its wording is the CLI's alone.

A step's presenters live in the module of its group below; importing the package registers them all.
"""

from . import balancing, evaluation, generation, preparation  # importing them registers their presenters

__all__ = ["balancing", "evaluation", "generation", "preparation"]
