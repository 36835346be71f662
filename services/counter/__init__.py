"""Counter: the exact, replayable supporter-count projection, and milestone detection."""
