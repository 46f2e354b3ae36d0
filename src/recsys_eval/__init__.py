"""recsys-eval: a SQL-first evaluation warehouse for recommender systems."""

__version__ = "0.2.0"
