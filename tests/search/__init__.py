"""Tests of digest/search/, one module per module there."""
