"""Deploying models and the agent to linux boards (Raspberry Pi over SSH)."""
