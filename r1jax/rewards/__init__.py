"""Rule-based and learned rewards."""
