"""SegGPT: in-context segmentation from example image+mask pairs."""
