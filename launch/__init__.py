"""Command line, recipes, data loading, plots and benchmarks."""
