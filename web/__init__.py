"""The pages, the embeddable counter and the dashboard."""
