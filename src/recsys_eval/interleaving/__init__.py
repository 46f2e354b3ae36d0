"""Interleaving mode (reference §7): the simulated or logged interleaved lists, their credit, and
the sign test, preference and health statistics (docs/interleaving.md)."""
