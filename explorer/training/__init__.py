"""Training: Fashion-MNIST loading, the trainer, time and memory estimates, the run store, and the run
manager with its execution backends (worker processes here, Ray for a cluster)."""
