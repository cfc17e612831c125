from django.apps import AppConfig


class ExecutionConfig(AppConfig):
    name = "execution"
    verbose_name = "Runs"

    def ready(self):
        # The broker must exist before the actors module registers its actors on it.
        from . import broker

        broker.setup()
        from . import actors  # noqa: F401
        from . import containers, processes, slurm, subjobs  # noqa: F401  (they register the built-in executors)
        from . import schedules

        schedules.connect()
