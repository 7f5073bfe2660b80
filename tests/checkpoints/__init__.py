"""Tiny random checkpoints built locally: config, random weights and a tokenizer trained here,
saved as a user's downloaded model directory would be."""
