"""WebDataset shard sets: deterministic writer, hours ledger and validation."""
