"""Shared pieces of the paper experiment scripts (optimizers, text helpers)."""
