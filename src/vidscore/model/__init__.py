"""The compound-word linear-attention Transformer (cmt), its attention and per-field sampling."""
