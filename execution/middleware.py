"""Dramatiq middleware for running Django code in worker threads."""
from django.db import close_old_connections
from dramatiq.middleware import Middleware


class DatabaseConnections(Middleware):
    """Give each message a usable connection and drop it after, as Django does per request."""

    def before_process_message(self, broker, message):
        close_old_connections()

    def after_process_message(self, broker, message, *, result=None, exception=None):
        close_old_connections()

    after_skip_message = after_process_message
