"""Benchmarks: hookswitch against bare sippy on loopback (``make bench``, BENCHMARKS.md)."""
