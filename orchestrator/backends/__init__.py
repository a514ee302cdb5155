"""Where workers run (local processes, Ray tasks), under one supervision policy."""
