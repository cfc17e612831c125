"""Controls and conveniences: pause, resume, restart, input, caching, QC, when, foreach, sub-jobs, loops."""
import json
from pathlib import Path

import pytest
from django.core.management import call_command
from rest_framework.test import APIClient

from execution import controls, dispatch, engine
from execution.local import SynchronousRunner
from execution.models import Node, Submission
from jobs import expressions
from tests.conftest import settle, wait_for
from tests.factories import make_backend, make_job, make_parameter, make_queue_type, make_task

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


@pytest.fixture
def examples(db):
    for name in ("controls.yaml", "tmp_count.yaml"):
        call_command("loadjobs", str(EXAMPLES / name), stdout=open("/dev/null", "w"))


def text(submission, ending, node=None):
    results = submission.results.filter(ending=ending, superseded=False)
    if node:
        results = results.filter(node__key=node)
    with results.get().file.open("rb") as handle:
        return handle.read().decode()


def statuses(submission):
    return {node.key: node.status for node in submission.nodes.all()}


# --- the safe expression language ---------------------------------------------------------


@pytest.mark.parametrize(
    "expression, expected",
    [
        ("a == 1 and b.c > 2", True), ("not a", False), ("b.c in [3, 4]", True), ("b['c'] * 2 - 1 == 5", True),
        ("s != 'x' or false", True), ("a < b.c <= 3", True), ("null == None", True),
    ],
)
def test_expressions_evaluate_on_plain_data(expression, expected):
    assert expressions.evaluate(expression, {"a": 1, "b": {"c": 3}, "s": "y"}) is expected


@pytest.mark.parametrize(
    "expression, message",
    [
        ("__import__('os').system('x')", "uses Call"), ("a.__class__", "may not start with '_'"), ("[x for x in a]", "uses ListComp"),
        ("lambda: 1", "uses Lambda"), ("a[b]", "subscripts must be literal"), ("a ==", "not a valid expression"),
    ],
)
def test_expressions_refuse_anything_but_plain_conditions(expression, message):
    with pytest.raises(expressions.ExpressionError, match=message):
        expressions.parse(expression)


def test_unknown_names_say_what_is_known():
    with pytest.raises(expressions.ExpressionError, match="unknown name 'zz'; known: a"):
        expressions.evaluate("zz == 1", {"a": 1})


# --- conveniences, end to end ---------------------------------------------------------------------


@pytest.mark.django_db
def test_scatter_gather_runs_an_instance_per_line_and_gathers_them(examples):
    submission = SynchronousRunner("scatter_gather", input=b"alpha\n\nbeta\ngamma\n").init().process()
    assert submission.status == "complete", submission.last_message
    assert statuses(submission)["shout"] == "skipped"
    assert sorted(k for k in statuses(submission) if k.startswith("shout_")) == ["shout_0", "shout_1", "shout_2"]
    report = json.loads(text(submission, ".report.json"))
    assert report == {"count": 3, "parts": ["0 ALPHA", "1 BETA", "2 GAMMA"]}
    assert "QC passed" in submission.nodes.get(key="gather").message


@pytest.mark.django_db
def test_a_failed_qc_check_fails_the_job(examples):
    submission = SynchronousRunner("scatter_gather", input=b"\n \n").init().process()
    assert submission.status == "error"
    assert "QC check failed: count >= 1 is false" in submission.nodes.get(key="gather").message


@pytest.mark.django_db
def test_foreach_over_a_list_parameter(db):
    task = make_task("echo_item", "echo $ITEM-$INDEX", stdout_glob=".item")
    make_parameter(task, "things", default="x,y")
    job = make_job("listy", steps=[("each", task, {"foreach": {"param": "echo_item_things"}})])
    submission = SynchronousRunner(job, params={"echo_item_things": '["a b", "c"]'}).init().process()
    assert sorted(text(submission, ".item", key) for key in ("each_0", "each_1")) == ["a b-0\n", "c-1\n"]


@pytest.mark.django_db
def test_foreach_over_an_output_list_and_files(db):
    producer = make_task("producer", "for i in 1 2; do echo $i > $ID.$i.part; done; printf '{\"op\": \"output\", \"name\": \"ids\", \"value\": [10, 20]}\\n' >> \"$SLUICE_CONTROL\"", out_glob=".part")
    by_output = make_task("by_output", "echo $ITEM", stdout_glob=".o")
    by_file = make_task("by_file", "cat $I1", in_glob=".part", stdout_glob=".f")
    job = make_job("fanout", steps=[
        producer,
        ("outs", by_output, {"after": ["producer"], "foreach": {"output": "producer.ids"}}),
        ("files", by_file, {"after": ["producer"], "foreach": {"files": ".part"}}),
    ])
    submission = SynchronousRunner(job).init().process()
    assert submission.status == "complete", submission.last_message
    assert sorted(text(submission, ".o", k) for k in ("outs_0", "outs_1")) == ["10\n", "20\n"]
    assert sorted(text(submission, ".f", k) for k in ("files_0", "files_1")) == ["1\n", "2\n"]


@pytest.mark.django_db
def test_a_foreach_that_breaks_max_nodes_fails_naming_the_promise(db):
    task = make_task("echo_item", "echo $ITEM")
    make_parameter(task, "things")
    job = make_job("bounded", steps=[("each", task, {"foreach": {"param": "echo_item_things"}})])
    job.promises.create(kind="max_nodes", spec={"value": 3})
    submission = SynchronousRunner(job, params={"echo_item_things": "a,b,c"}).init().process()
    assert submission.status == "error" and "max_nodes" in submission.last_message


@pytest.mark.django_db
def test_when_skips_a_step_whose_condition_is_false(db):
    chooser = make_task("cond", "true")
    make_parameter(chooser, "mode", default="fast")
    job = make_job("cond", steps=[
        chooser,
        ("fast", make_task("fast", "echo fast"), {"when": "cond_mode == 'fast'", "after": ["cond"]}),
        ("slow", make_task("slow", "echo slow"), {"when": "cond_mode == 'slow'", "after": ["cond"]}),
    ])
    submission = SynchronousRunner(job).init().process()
    assert statuses(submission) == {"cond": "succeeded", "fast": "succeeded", "slow": "skipped"}
    assert submission.nodes.get(key="slow").message == "skipped: when \"cond_mode == 'slow'\" is false"


@pytest.mark.django_db
def test_a_bad_condition_fails_the_submission_with_a_clear_message(db):
    job = make_job("badcond", steps=[("s", make_task("t", "true"), {"when": "nothing == 1"})])
    submission = SynchronousRunner(job).init().process()
    assert submission.status == "error" and "unknown name 'nothing'" in submission.last_message


@pytest.mark.django_db
def test_a_sub_job_runs_as_a_child_and_its_results_are_the_parents(examples):
    submission = SynchronousRunner("sub_job").init().process()
    assert submission.status == "complete", submission.last_message
    child = Submission.objects.get(parent_node__submission=submission)
    assert child.job.name == "tmp_count" and child.status == "complete"
    assert text(submission, ".report").startswith("tmp holds ")
    assert submission.results.filter(node__key="child", ending=".count").exists()


@pytest.mark.django_db
def test_cached_rerun_reuses_the_first_result(examples):
    runner = SynchronousRunner("cached_rerun", params={"slow_square_n": "9"}).init()
    first, second = runner.run(n=2)
    assert (first.nodes.get().status, second.nodes.get().status) == ("succeeded", "cached")
    assert text(first, ".square") == text(second, ".square") == "81\n"
    other = SynchronousRunner("cached_rerun", params={"slow_square_n": "4"}).init().process()
    assert other.nodes.get().status == "succeeded" and text(other, ".square") == "16\n"


@pytest.mark.django_db
def test_a_bounded_loop_adds_fresh_instances_until_done(examples):
    submission = SynchronousRunner("loop", params={"countdown_n": "3"}).init().process()
    assert sorted(statuses(submission)) == ["tick", "tick_0", "tick_1", "tick_2"]
    runaway = SynchronousRunner("loop", params={"countdown_n": "50"}).init().process()
    assert runaway.status == "error" and '"kind": "max_nodes", "value": 10' in runaway.last_message


# --- controls through the API ------------------------------------------------------------------


@pytest.mark.django_db
def test_approval_waits_without_a_process_then_follows_the_answer(examples):
    submission = engine.submit(engine.job_by_name("approval"))
    dispatch.start(submission)
    submission.refresh_from_db()
    assert submission.status == "waiting" and statuses(submission)["approve"] == "waiting"
    client = APIClient()
    refused = client.post(f"/api/submissions/{submission.uuid}/nodes/publish/input/", {"value": "yes"}, format="json")
    assert refused.status_code == 409 and "not waiting for input" in refused.json()["detail"]
    assert client.post(f"/api/submissions/{submission.uuid}/nodes/approve/input/", {}, format="json").status_code == 400
    answered = client.post(f"/api/submissions/{submission.uuid}/nodes/approve/input/", {"value": "yes"}, format="json")
    assert answered.status_code == 200
    for node_id in Node.objects.filter(submission=submission, status="queued").values_list("pk", flat=True):
        engine.run_node(node_id)
    submission.refresh_from_db()
    assert submission.status == "complete"
    assert statuses(submission) == {"approve": "succeeded", "publish": "succeeded", "archive": "skipped"}
    assert submission.nodes.get(key="approve").outputs == {"input": "yes"}


@pytest.mark.django_db(transaction=True)
def test_pause_stops_new_steps_and_resume_goes_on(worker, tmp_path):
    # "first" runs until the test lets it end (20 s at most), so the pause surely comes while it is queued or running.
    gate = tmp_path / "gate"
    first = make_task("first", f"for i in $(seq 400); do [ -e {gate} ] && exit 0; sleep 0.05; done")
    second = make_task("second", "true")
    submission = engine.submit(make_job("two", steps=[first, second]))
    dispatch.start(submission)
    client = APIClient()
    assert client.post(f"/api/submissions/{submission.uuid}/pause/").json()["status"] == "paused"
    assert client.post(f"/api/submissions/{submission.uuid}/pause/").status_code == 409
    gate.touch()
    settle(worker)  # "first" ended (or, paused before it started, never ran) and the worker is done with it
    submission.refresh_from_db()
    assert submission.status == "paused" and submission.nodes.get(key="second").status == "pending"
    assert client.post(f"/api/submissions/{submission.uuid}/resume/").status_code == 200
    assert wait_for(submission).status == "complete"


@pytest.mark.django_db
def test_restart_reruns_a_node_and_downstream_keeping_history(examples):
    runner = SynchronousRunner("scatter_gather", input=b"one\ntwo\n").init()
    submission = runner.process()
    old_gather = submission.results.get(ending=".report.json")
    assert controls.restart(submission.pk, "split", who="tester")
    while Node.objects.filter(submission=submission, status="queued").exists():
        for node_id in Node.objects.filter(submission=submission, status="queued").values_list("pk", flat=True):
            engine.run_node(node_id)
    submission.refresh_from_db()
    assert submission.status == "complete", submission.last_message
    old_gather.refresh_from_db()
    assert old_gather.superseded
    assert submission.results.filter(ending=".report.json", superseded=False).count() == 1
    assert sorted(k for k in statuses(submission) if k.startswith("shout_")) == ["shout_0", "shout_1"]
    document = APIClient().get(f"/api/submissions/{submission.uuid}/").json()
    assert any(item["name"].endswith(".report.json") for item in document["history"])


@pytest.mark.django_db
def test_restart_refuses_while_a_step_downstream_runs(db):
    submission = engine.submit(make_job("j", steps=[make_task("a", "true"), make_task("b", "true")]))
    assert submission.nodes.get(key="a").status == "queued"
    with pytest.raises(controls.ControlRefused, match="step 'a' is queued"):
        controls.restart(submission.pk, "a")


@pytest.mark.django_db
def test_runjob_answers_a_waiting_step(examples):
    from io import StringIO

    out = StringIO()
    call_command("runjob", "approval", "--answer", "approve=no", stdout=out)
    submission = Submission.objects.get(job__name="approval")
    assert submission.status == "complete"
    assert statuses(submission) == {"approve": "succeeded", "publish": "skipped", "archive": "succeeded"}
    with pytest.raises(SystemExit) as waiting:
        call_command("runjob", "approval", stdout=StringIO())
    assert waiting.value.code == 1  # left waiting for an answer: not complete


# --- edge cases found in review -----------------------------------------------------------------


@pytest.mark.django_db
def test_the_cache_key_includes_the_value_and_dynamic_tasks_are_not_cacheable(db):
    from django.core.exceptions import ValidationError

    task = make_task("echo_value", "echo $VALUE", stdout_glob=".out", cache=True)
    job = make_job("values", steps=[task])
    first = SynchronousRunner(job, input=b"one").init().process()
    second = SynchronousRunner(job, input=b"two").init().process()
    assert (text(first, ".out"), text(second, ".out")) == ("one\n", "two\n")
    assert second.nodes.get().status == "succeeded"
    with pytest.raises(ValidationError, match="a dynamic task cannot be cached"):
        make_task("grower", "true", cache=True, dynamic=True).full_clean()


@pytest.mark.django_db
def test_restart_refuses_what_it_cannot_do(db):
    bad, after = make_task("bad", "exit 1"), make_task("after", "true")
    submission = SynchronousRunner(make_job("j", steps=[bad, after])).init().process()
    Node.objects.filter(submission=submission, key="after").update(status="succeeded")  # as if it had run earlier
    with pytest.raises(controls.ControlRefused, match="comes after 'bad', which is failed; restart 'bad' instead"):
        controls.restart(submission.pk, "after")
    fresh = engine.submit(make_job("k", steps=[make_task("only", "true"), make_task("later", "true")]))
    with pytest.raises(controls.ControlRefused, match="has not run yet"):
        controls.restart(fresh.pk, "later")


@pytest.mark.django_db
def test_restart_takes_back_the_promises_and_cache_entries_of_restarted_nodes(db):
    from execution.models import CacheEntry

    make_task("M", "true")
    grower = make_task(
        "grower",
        "printf '{\"op\": \"add_node\", \"key\": \"x\", \"task\": \"M\"}\\n{\"op\": \"promise\", \"kind\": \"no_new_nodes\"}\\n' >> \"$SLUICE_CONTROL\"",
        dynamic=True,
    )
    square = make_task("sq", "echo 4", stdout_glob=".sq", cache=True)
    submission = SynchronousRunner(make_job("j", steps=[grower, ("sq", square, {"after": ["grower"]})])).init().process()
    assert submission.status == "complete" and CacheEntry.objects.count() == 1
    queued = controls.restart(submission.pk, "grower")
    assert Submission.objects.get(pk=submission.pk).promises == [] and CacheEntry.objects.count() == 0
    while queued:
        queued = queued[1:] + engine.run_node(queued[0])
    submission.refresh_from_db()
    assert submission.status == "complete", submission.last_message
    assert sorted(statuses(submission)) == ["grower", "sq", "x"]


@pytest.mark.django_db
def test_a_sub_job_cannot_nest_without_end(db):
    from jobs.models import Backend, QueueType

    backend = Backend.objects.create(name="subjobs", queue_type=QueueType.objects.create(name="jobs", execution_behaviour="job"))
    make_job("ouroboros", steps=[("again", make_task("again", "ouroboros", backend=backend))])
    submission = SynchronousRunner("ouroboros").init().process()
    assert Submission.objects.count() <= 7
    assert "nested 6 deep; the limit is SLUICE_MAX_SUBJOB_DEPTH (5)" in " ".join(Node.objects.values_list("message", flat=True))
    assert submission.status == "error"


@pytest.mark.django_db
def test_sub_job_results_are_named_for_the_parent_and_dumps_include_the_child_job(examples):
    from jobs.yaml_io import dump_catalogue

    submission = SynchronousRunner("sub_job").init().process()
    names = submission.results.filter(node__key="child").values_list("name", flat=True)
    assert names and all(name.startswith(str(submission.uuid)) for name in names)
    assert [job["name"] for job in dump_catalogue(["sub_job"])["jobs"]] == ["sub_job", "tmp_count"]


@pytest.mark.django_db
def test_pause_and_resume_keep_the_first_start_time(db):
    submission = engine.submit(make_job("j", steps=[make_task("a", "true"), make_task("b", "true")]))
    engine.run_node(submission.ready[0])
    submission.refresh_from_db()
    started = submission.started_at
    controls.pause(submission.pk)
    with pytest.raises(controls.ControlRefused, match="already paused"):
        controls.pause(submission.pk)
    controls.resume(submission.pk)
    submission.refresh_from_db()
    assert submission.started_at == started and submission.status == "running"


@pytest.mark.django_db
def test_a_shape_promise_ignores_skipped_nodes(db):
    task = make_task("item", "true")
    make_parameter(task, "things")
    job = make_job("shaped_map", steps=[("each", task, {"foreach": {"param": "item_things"}})])
    job.promises.create(kind="shape", spec={"pattern": "item"})
    submission = SynchronousRunner(job, params={"item_things": "a,b"}).init().process()
    assert submission.status == "complete", submission.last_message


def test_too_many_paths_is_an_error_not_a_hang():
    from execution.mutations import GraphState, OperationError, paths

    layers = [[f"n{layer}_{i}" for i in range(4)] for layer in range(8)]
    nodes = {key: ("T", "succeeded") for layer in layers for key in layer}
    edges = {(a, b) for left, right in zip(layers, layers[1:]) for a in left for b in right}
    with pytest.raises(OperationError, match="more than 10000 source-to-sink paths"):
        paths(GraphState(nodes, edges))


@pytest.mark.django_db
def test_steps_after_a_skipped_condition_still_run(db):
    job = make_job("chain", steps=[
        make_task("a", "true"),
        ("b", make_task("b", "true"), {"when": "false"}),
        make_task("c", "echo c", stdout_glob=".c"),
    ])
    submission = SynchronousRunner(job).init().process()
    assert submission.status == "complete"
    assert statuses(submission) == {"a": "succeeded", "b": "skipped", "c": "succeeded"}


@pytest.mark.django_db
def test_a_retried_node_does_not_release_its_successors(db, shared_dir):
    counter = shared_dir / "tries"
    flaky = make_task("flaky", f"echo x >> {counter}; [ $(wc -l < {counter}) -ge 2 ]", retries=1)
    submission = engine.submit(make_job("j", steps=[flaky, make_task("after", "true")]))
    first = submission.ready
    assert engine.run_node(first[0]) == first  # retried: only itself comes back, "after" stays pending
    assert submission.nodes.get(key="after").status == "pending"


# --- sub-job parameters ----------------------------------------------------------------------------


def showing_child():
    """A job 'child' whose one step prints its four required parameters; a sub-job task 'run_child' runs it."""
    show = make_task("show", "echo $P1 $P2 $P3 $P4", stdout_glob=".seen")
    make_parameter(show, "word", switchless=True, required=True)
    make_parameter(show, "index", switchless=True, required=True, type="int")
    make_parameter(show, "count", switchless=True, required=True, type="int")
    make_parameter(show, "tag", switchless=True, required=True)
    make_job("child", steps=[show])
    return make_task("run_child", "child", backend=make_backend("subjobs", make_queue_type("jobs", "job")))


def mapping_parent(run_child, **params):
    """A job 'parent': 'setup' sends the output count=7, then 'each' runs the child once per item of setup_items."""
    setup = make_task("setup", "printf '{\"op\": \"output\", \"name\": \"count\", \"value\": 7}\\n' >> \"$SLUICE_CONTROL\"")
    make_parameter(setup, "tag", required=True)
    make_parameter(setup, "items")
    mapping = {"show_word": "$ITEM", "show_index": "$INDEX + 1", "show_count": "setup.count", "show_tag": "setup_tag", **params}
    return make_job("parent", steps=[setup, ("each", run_child, {"after": ["setup"], "foreach": {"param": "setup_items"}, "params": mapping})])


@pytest.mark.django_db
def test_a_sub_job_step_maps_a_parameter_an_item_and_an_output_to_the_childs_required_parameters(db):
    job = mapping_parent(showing_child())
    submission = SynchronousRunner(job, params={"setup_tag": "blue", "setup_items": "a,b"}).init().process()
    assert submission.status == "complete", submission.last_message
    assert [text(submission, ".seen", key) for key in ("each_0", "each_1")] == ["a 1 7 blue\n", "b 2 7 blue\n"]
    children = Submission.objects.filter(parent_node__submission=submission).order_by("parent_node__key")
    assert [child.params for child in children] == [
        {"show_word": "a", "show_index": 1, "show_count": 7, "show_tag": "blue"},
        {"show_word": "b", "show_index": 2, "show_count": 7, "show_tag": "blue"},
    ]


@pytest.mark.django_db
def test_a_mapped_value_the_child_refuses_fails_the_node_saying_why(db):
    job = mapping_parent(showing_child(), show_index="$ITEM")
    submission = SynchronousRunner(job, params={"setup_tag": "blue", "setup_items": "x"}).init().process()
    assert submission.status == "error"
    node = submission.nodes.get(key="each_0")
    assert node.status == "failed" and not Submission.objects.filter(parent_node=node).exists()
    assert "sub-job 'child': show_index: parameter 'show_index' must be an integer, got 'x' (mapped by the step's params from '$ITEM')" in node.message
    assert "step 'each_0' failed: sub-job 'child'" in submission.last_message


@pytest.mark.django_db
def test_a_mapped_output_that_is_not_there_fails_the_node_naming_it(db):
    job = mapping_parent(showing_child(), show_count="setup.missing")
    submission = SynchronousRunner(job, params={"setup_tag": "blue", "setup_items": "x"}).init().process()
    assert submission.status == "error"
    assert "sub-job 'child': params: 'show_count': no 'missing' in setup" in submission.nodes.get(key="each_0").message


@pytest.mark.django_db
def test_a_sub_job_gets_each_line_of_the_upload_as_its_required_parameter(examples):
    submission = SynchronousRunner("greet_each", input=b"alice\n\nbob\n").init().process()
    assert submission.status == "complete", submission.last_message
    assert json.loads(text(submission, ".report.json"))["parts"] == ["hello alice", "hello bob"]
    assert sorted(Submission.objects.filter(job__name="greeting").values_list("params", flat=True), key=str) == [
        {"greet_name": "alice"}, {"greet_name": "bob"},
    ]


@pytest.mark.parametrize(
    "text, expected",
    [("$ITEM", "_ITEM"), ("$INDEX + 1", "_INDEX + 1"), ("'$ITEM' + $ITEM", "'$ITEM' + _ITEM"), ("$ITEMS", "$ITEMS"), ('"a\\"$ITEM"', '"a\\"$ITEM"')],
)
def test_item_placeholders_are_read_outside_quotes_only(text, expected):
    from jobs import mappings

    assert mappings.translate(text) == expected


def test_mapped_values_are_evaluated_in_the_safe_language_only():
    from jobs import mappings

    context = {"setup_tag": "blue", "setup": {"count": 7, "ids": [1]}}
    assert mappings.evaluate({"a": "setup.count * 2", "b": "$ITEM", "c": 3, "d": "null", "e": "'text'"}, context, "x", 0) == {
        "a": 14, "b": "x", "c": 3, "e": "text",
    }
    with pytest.raises(mappings.MappingError, match="params: 'a': 'setup.ids' gives a list"):
        mappings.evaluate({"a": "setup.ids"}, context)
    assert "uses Call" in mappings.shape_problem({"a": "__import__('os').system('x')"})
    assert "not list" in mappings.shape_problem({"a": [1]})


def test_an_answer_outside_the_declared_choices_is_refused_and_changes_nothing(db):
    """With input_choices, "Yes" is not "yes": refused with the choices named, the step still waits."""
    from execution.errors import SubmissionInvalid

    task = make_task(name="approve", executable="", input_prompt="Go on?", input_choices=["yes", "no"])
    job = make_job(name="gate", steps=[task])
    submission = engine.submit(job)
    with pytest.raises(SubmissionInvalid, match=r"takes one of 'yes', 'no' \(exactly, case included\), not 'Yes'"):
        controls.provide_input(submission.pk, "approve", "Yes", "ann")
    assert submission.nodes.get(key="approve").status == "waiting"
    controls.provide_input(submission.pk, "approve", "yes", "ann")
    node = submission.nodes.get(key="approve")
    assert node.status == "succeeded" and node.outputs["input"] == "yes"


def test_choices_need_a_prompt_and_must_be_distinct_answers(db):
    from django.core.exceptions import ValidationError

    for choices, message in ((["yes"], "only a task with an input prompt"), ("yes", "must be a list of answers"), (["a", "a"], "twice"), ([""], "must be a list")):
        task = make_task(name="t", executable="true", input_choices=choices, input_prompt="" if message.startswith("only") else "Go?")
        with pytest.raises(ValidationError, match=message):
            task.full_clean()
        task.delete()
