"""Tests of digest/store/, one module per module."""
