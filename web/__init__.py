"""The pages, the embeddable counter and the dashboard."""

from .surfaces import KeptPage, Surfaces

__all__ = ["KeptPage", "Surfaces"]
