"""Views of the whole host rather than one namespace: every network namespace, and the Prometheus exporter."""
