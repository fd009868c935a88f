"""`make bench`: the benchmark suite. See docs/benchmarks.md and `python -m bench --help`."""
