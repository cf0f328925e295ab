"""Frozen encoders (VAE, Flan-T5, CLIP, speaker) and feature-shard extraction."""
