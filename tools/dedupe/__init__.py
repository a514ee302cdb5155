"""``dedupe``: deduplicate a legacy final file by its event key, partition by partition."""
