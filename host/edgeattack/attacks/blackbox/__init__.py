"""Black-box attacks (query a target, typically a device): each module registers its attack."""
