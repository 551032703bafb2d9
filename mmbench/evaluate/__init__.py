"""Full-ranking evaluation on the device, ranking and rating metrics, per-user vectors."""
