"""Shared foundation: ViT backbone, the Painter generalist, losses, checkpoints."""
