"""Label a dataset from a few examples: scoring, exports (COCO, Label Studio), runs."""
