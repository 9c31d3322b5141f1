"""The search engine: one driver running any strategy (the engine's NSGA-II among them), the evaluate-and-store step,
refinement, Pareto tools and storage."""
