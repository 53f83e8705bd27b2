"""Benchmarks (not tests): each prints its figures and writes docs/bench/<name>.md;
`python -m bench` runs them all and assembles docs/BENCHMARKS.md."""
