"""Training: run configs, the episode data of each mixture, the SegGPT trainer, and the promptable
model's training and label-free domain adaptation."""
