"""The run on disk: its layout, checkpoint, commit protocol, shards, heartbeats, logs,
PID files, the final merge, and the readers that snapshot a run for its observers.

Everything else asks :class:`orchestrator.run.layout.RunLayout` for a run's paths.
"""
