"""``seed-checkpoint``: a run's checkpoint seeded from the events of old runs."""
