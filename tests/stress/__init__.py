"""Chaos and soak runs (``make stress``), outside ``make test``."""
