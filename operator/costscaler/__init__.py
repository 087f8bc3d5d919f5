"""costscaler: autoscale ML inference deployments on total cost of ownership."""

__version__ = "0.1.0"
