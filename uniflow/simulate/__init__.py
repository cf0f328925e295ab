"""Simulated training pairs: URGENT-style noisy speech (SE) and low-pass super-resolution pairs (SR)."""
