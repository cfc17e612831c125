"""Response headers every page needs, whichever app answers."""
from django.conf import settings

__all__ = ["ContentSecurityPolicy"]

HEADER = "Content-Security-Policy"


class ContentSecurityPolicy:
    """Send ``SLUICE_CONTENT_SECURITY_POLICY`` with every response (empty: none).

    A response that already has a policy keeps it: the API's SVG pictures set a
    stricter one of their own. Django 5.2 has no such header of its own.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        policy = settings.SLUICE_CONTENT_SECURITY_POLICY
        if policy and HEADER not in response:
            response[HEADER] = policy
        return response
