"""Benchmarks: pure metrics over episode records (`metrics`), the CLI (`benchmark`), and
tables and plots (`reports`). See evals/README.md."""

import envs  # noqa: F401  (first: it sets OpenMP's passive waiting before torch loads)
