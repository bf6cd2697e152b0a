"""Scenarios: the file model, step checks, the runner, reports and snapshots."""
