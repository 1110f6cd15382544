"""Firmware sources (C), shipped as package data of edgeattack."""
