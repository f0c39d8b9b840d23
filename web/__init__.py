"""The pages, the embeddable counter and the dashboard."""

from .surfaces import Surfaces

__all__ = ["Surfaces"]
