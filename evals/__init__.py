"""Benchmarks: pure metrics over episode records (`metrics`), the CLI (`benchmark`), and
tables and plots (`reports`). See evals/README.md."""
