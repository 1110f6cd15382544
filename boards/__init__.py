"""Board profiles (YAML) and board ports, shipped as package data of edgeattack."""
