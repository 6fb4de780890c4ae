"""Runnable examples (`python -m birnn.examples.japanese_vowels`)."""
