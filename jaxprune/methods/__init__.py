"""Pruning methods: one module per criterion, each a scorer plus a factory."""
