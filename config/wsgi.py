import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
application = get_wsgi_application()

# Load the WebAssembly Graphviz now, in the background, rather than on the first page with a diagram.
from jobs import diagrams  # noqa: E402  (needs the app registry set up above)

diagrams.warm_up()
