"""Trainers: the waveform VAE (and later the flow-matching backbone)."""
