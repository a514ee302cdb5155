"""Launch, supervise, observe and clean up runs."""
