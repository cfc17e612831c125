"""Attacks through submitted values, run for real: quoting broken out of, options injected, text mangled."""
import pytest

from execution.local import SynchronousRunner
from execution.models import Result, Submission
from jobs.yaml_io import CatalogueError, load_catalogue
from tests.clients import client_for, errors
from tests.factories import make_backend, make_job, make_parameter, make_queue_type, make_task

pytestmark = pytest.mark.django_db

EMOJI_AND_EXTENSION_B = "smile \U0001F600, hanzi \U00020BB7, caf\u00e9"


def run(job, **params):
    return SynchronousRunner(job, params=params).init().process()


def result_text(submission, ending):
    with Result.objects.get(submission=submission, ending=ending).file.open("rb") as handle:
        return handle.read().decode("utf-8")


def code_backend(behaviour):
    return make_backend(behaviour, queue_type=make_queue_type(behaviour, behaviour))


# An attacker's value for each language that, pasted into the author's quotes, closes them and runs `touch`.
BREAKOUTS = {
    "python": ("v = '$P1'\nprint(v)", "'; __import__('os').system('touch {marker}'); '"),
    "r": ("v <- '$P1'\nprint(v)", "'; system('touch {marker}'); '"),
    "localhost": ("echo '$P1'", "x; touch {marker}; echo "),
}


@pytest.mark.parametrize("behaviour", BREAKOUTS)
def test_a_task_that_quotes_a_value_placeholder_does_not_load(behaviour):
    executable, _ = BREAKOUTS[behaviour]
    catalogue = {
        "queue_types": [{"name": behaviour, "execution_behaviour": behaviour}],
        "backends": [{"name": behaviour, "queue_type": behaviour}],
        "tasks": [{"name": "echo", "backend": behaviour, "executable": executable, "parameters": [{"rest_alias": "text"}]}],
    }
    with pytest.raises(CatalogueError, match=r"^tasks\[0\]\.executable: \$P1 is inside (a string|single quotes) on line 1"):
        load_catalogue(catalogue)


@pytest.mark.slow
@pytest.mark.parametrize("behaviour", BREAKOUTS)
def test_a_value_cannot_break_out_of_the_quotes_of_a_task_saved_before_the_check(behaviour, shared_dir):
    """The step fails, naming the placeholder, instead of running the attacker's value."""
    executable, attack = BREAKOUTS[behaviour]
    marker = shared_dir / f"pwned-{behaviour}"
    task = make_task("echo", executable, backend=code_backend(behaviour) if behaviour != "localhost" else make_backend())
    make_parameter(task, "text")
    submission = run(make_job(steps=[task]), echo_text=attack.format(marker=marker))
    assert not marker.exists()
    assert submission.status == "error"
    assert "$P1 is inside" in submission.nodes.get().message


@pytest.mark.slow
@pytest.mark.parametrize("behaviour, executable", [
    ("python", "v = $P1\nprint(v)\nopen('$O1', 'w', encoding='utf-8').write(v)"),
    ("r", "v <- $P1\nprint(v)\nwriteLines(v, '$O1', useBytes = TRUE)"),
    ("localhost", "printf '%s' $P1 > $O1"),
])
def test_a_bare_placeholder_keeps_hostile_values_as_data(behaviour, executable, shared_dir):
    marker = shared_dir / f"pwned-{behaviour}"
    value = f"x'\"; touch {marker}; $(touch {marker}) `touch {marker}` \\\" '); system('touch {marker}'); #"
    task = make_task("echo", executable, backend=code_backend(behaviour) if behaviour != "localhost" else make_backend(), out_glob=".out")
    make_parameter(task, "text")
    submission = run(make_job(steps=[task]), echo_text=value)
    assert submission.status == "complete", submission.nodes.get().message
    assert result_text(submission, ".out").rstrip("\n") == value
    assert not marker.exists()


@pytest.mark.slow
def test_python_code_gets_text_beyond_the_basic_plane_intact():
    code = "v = $P1\nprint(v)\nopen('$O1', 'w', encoding='utf-8').write(' '.join(str(ord(c)) for c in v) + '\\n' + v)"
    task = make_task("chars", code, backend=code_backend("python"), out_glob=".out")
    make_parameter(task, "text")
    submission = run(make_job(steps=[task]), chars_text=EMOJI_AND_EXTENSION_B)
    assert submission.status == "complete", submission.nodes.get().message
    codes, text = result_text(submission, ".out").split("\n", 1)
    assert codes.split() == [str(ord(char)) for char in EMOJI_AND_EXTENSION_B]
    assert text == EMOJI_AND_EXTENSION_B


@pytest.mark.slow
def test_r_code_gets_text_beyond_the_basic_plane_intact():
    # useBytes: write the UTF-8 bytes whatever the step's locale, so the test sees what R holds.
    code = "v <- $P1\nwriteLines(c(paste(utf8ToInt(v), collapse = ' '), v), '$O1', useBytes = TRUE)"
    task = make_task("chars", code, backend=code_backend("r"), out_glob=".out")
    make_parameter(task, "text")
    submission = run(make_job(steps=[task]), chars_text=EMOJI_AND_EXTENSION_B)
    assert submission.status == "complete", submission.nodes.get().message
    codes, text = result_text(submission, ".out").rstrip("\n").split("\n")
    assert codes.split() == [str(ord(char)) for char in EMOJI_AND_EXTENSION_B]
    assert text == EMOJI_AND_EXTENSION_B


@pytest.fixture
def sorting_job():
    task = make_task("sort", "sort $P1 $I1", in_glob=".input", stdout_glob=".sorted")
    make_parameter(task, "key")
    return make_job("sorting", steps=[task])


@pytest.mark.parametrize("value", ["--output=/tmp/elsewhere", "-o/tmp/elsewhere", "  -o /tmp/elsewhere"])
def test_an_option_in_a_string_value_is_refused_naming_the_parameter(sorting_job, value):
    response = client_for(None).post("/api/submissions/", {"job": "sorting", "sort_key": value, "input_data": "b\na\n"}, format="json")
    assert response.status_code == 400
    [message] = errors(response)["sort_key"]
    assert message.startswith("parameter 'sort_key' must not begin with '-' (a program could take it for an option)")
    assert not Submission.objects.exists()


def test_a_parameter_may_allow_dashes(sorting_job):
    sorting_job.steps.get().task.parameters.update(allow_dash=True)
    response = client_for(None).post("/api/submissions/", {"job": "sorting", "sort_key": "-r", "input_data": "b\na\n"}, format="json")
    assert response.status_code == 201, response.json()
    assert Submission.objects.get().params == {"sort_key": "-r"}


def test_numbers_keep_their_sign_and_choices_are_the_authors():
    task = make_task("shift", "shift $P1 $P2 $P3")
    make_parameter(task, "by", type="int")
    make_parameter(task, "scale", type="float")
    make_parameter(task, "mode", type="choice", choices="-a,-b")
    make_job("shifting", steps=[task])
    body = {"job": "shifting", "shift_by": "-5", "shift_scale": -0.5, "shift_mode": "-b"}
    response = client_for(None).post("/api/submissions/", body, format="json")
    assert response.status_code == 201, response.json()
    assert Submission.objects.get().params == {"shift_by": -5, "shift_scale": -0.5, "shift_mode": "-b"}
