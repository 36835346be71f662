"""The contract between Groundswell's services: events, subjects, settings, logging."""
