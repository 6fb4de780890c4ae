"""Attention layers: `Attention` (Luong), `AdditiveAttention` (Bahdanau), `MultiHeadAttention`."""
