"""Small factories with keyword overrides, so a test shows the data it depends on."""
from jobs.models import Backend, Job, Parameter, QueueType, Step, Task


def make_queue_type(name="localhost", execution_behaviour="localhost"):
    return QueueType.objects.get_or_create(name=name, defaults={"execution_behaviour": execution_behaviour})[0]


def make_backend(name="local", queue_type=None, root_path=""):
    queue_type = queue_type or make_queue_type()
    return Backend.objects.get_or_create(name=name, defaults={"queue_type": queue_type, "root_path": root_path})[0]


def make_task(name="task", executable="true", backend=None, **fields):
    backend = backend or make_backend()
    return Task.objects.create(name=name, executable=executable, backend=backend, **fields)


def make_parameter(task, rest_alias="p", position=None, **fields):
    if position is None:
        position = task.parameters.count()
    return Parameter.objects.create(task=task, rest_alias=rest_alias, position=position, **fields)


def make_job(name="job", steps=(), **fields):
    """Make a job; ``steps`` are tasks, or (key, task, {step fields}) tuples, in order."""
    job = Job.objects.create(name=name, **fields)
    for position, step in enumerate(steps):
        if isinstance(step, Task):
            key, task, extra = step.name, step, {}
        else:
            key, task, extra = (*step, {})[:3]
        Step.objects.create(job=job, key=key, task=task, **{"ordering": position, **extra})
    return job
