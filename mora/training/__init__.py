"""Self-modulated fine-tuning on the iteration shards (the paper's training side)."""
