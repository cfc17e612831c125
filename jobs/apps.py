from django.apps import AppConfig


class JobsConfig(AppConfig):
    name = "jobs"
    verbose_name = "Job catalogue"

    def ready(self):
        from . import catalogue

        catalogue.connect()
