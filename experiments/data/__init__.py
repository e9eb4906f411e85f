"""Offline datasets for the demo and the experiments."""
