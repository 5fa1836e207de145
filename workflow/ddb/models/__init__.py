"""Model loaders: every entry takes a hub id, a local directory, or `tiny` (a seeded miniature)."""
