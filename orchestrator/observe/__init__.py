"""Looking at a run's events: the HTML run report and one event in context (read-only)."""
