"""openQA needles: loading and matching."""
