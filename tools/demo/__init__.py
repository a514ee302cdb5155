"""``demo`` and ``demo-data``: generated bars with every event kind, and a run over them."""
