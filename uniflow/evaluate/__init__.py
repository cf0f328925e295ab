"""Objective metrics of the paper's appendix B, each score reported with the card of how it was made."""
