"""``bench``: detection against the cost of reading, workers, and the orchestrator's tax."""
