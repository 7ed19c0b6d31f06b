"""``python -m crewai_rust bench``: run the benchmarks/ suite and report it."""
