"""The model registry: which models kinema uses, where their weights are, which device runs them."""
