"""Command groups: each module adds its sub-parsers and binds handlers (lazy imports inside)."""
