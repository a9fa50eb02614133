"""Command-line tools: thin wrappers over the painter and seggpt libraries."""
