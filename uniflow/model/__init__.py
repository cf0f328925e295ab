"""Neural models of UniFlow-Audio: the waveform VAE that maps 24 kHz audio to 50 Hz latents and back."""
