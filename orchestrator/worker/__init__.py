"""The work itself: one batch routine (detect a batch, write its temporary shard,
heartbeat) and the worker process's loop around it."""
