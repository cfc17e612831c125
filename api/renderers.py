"""How the API answers a browser."""
from rest_framework import renderers

__all__ = ["BrowsableAPIRenderer"]


class BrowsableAPIRenderer(renderers.BrowsableAPIRenderer):
    """DRF's browsable API without its one inline ``<style>``, which the Content-Security-Policy refuses.

    That style is Pygments' CSS for code in Markdown descriptions, and the
    API's descriptions are plain text, so nothing is lost.
    """

    def get_context(self, *args, **kwargs):
        context = super().get_context(*args, **kwargs)
        context["code_style"] = None
        return context
