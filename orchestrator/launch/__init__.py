"""``launch``: plan the remaining symbols, hand the plan to a backend, merge at the end."""
