"""Tests of digest/subscribe/, one module per module there."""
