"""I/O with Prometheus and Kubernetes, nothing else: the controller calls these."""
