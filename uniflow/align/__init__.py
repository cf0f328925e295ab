"""Alignment: phone intervals from forced aligners, per-phone latent frame counts, singing scores."""
