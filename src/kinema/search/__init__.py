"""Finding things in footage: shots, semantic search over an index, and edits built from them."""
