"""Gradient attacks, batched and compiled: each module registers its attack (whitebox.graph holds
the compiled machinery they share)."""
