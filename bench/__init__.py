"""dropq's benchmarks: `make bench` (python -m bench.run) measures them side by side and writes BENCHMARKS.md."""
