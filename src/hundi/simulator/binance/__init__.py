"""hundi."""
