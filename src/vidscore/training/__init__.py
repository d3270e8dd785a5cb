"""Training: offline corpora (corpus), the training npz (dataset) and the training loop (loop)."""
