"""noisepad's training: datasets, training with PyTorch Lightning, export to engine model files."""
