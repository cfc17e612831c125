"""Random dynamic jobs: every final graph is an instance of every earlier picture of it.

Steps do not run as processes: a scripted executor stands in for the shell
and hands the engine control-channel text drawn at run time, so what a step
sends goes through the same path as a real step's control lines
(``engine._conclude`` → ``mutations.parse_lines`` → ``plan_changes`` →
``apply_changes``), promises and all.
"""
import json
from collections import Counter

import pytest
from django.db import transaction
from hypothesis import HealthCheck, event, given, settings, strategies as st

from execution import diagrams, engine, executors
from execution.models import Node
from execution.states import SubmissionStatus
from jobs import shapes
from jobs.models import JobPromise
from tests.factories import make_job, make_task

pytestmark = pytest.mark.django_db

TASKS = ["D", "E", "S"]  # D and E are dynamic, S is not
MAX_GRAPH = 9  # a step adds nothing to a graph this large, which bounds each run


class Rollback(Exception):
    """Raised to undo one example's rows."""


class ScriptedExecutor(executors.Executor):
    """Finish every run at once, successfully, with control lines that ``script(node)`` draws."""

    behaviour = "localhost"

    def __init__(self, script):
        self.script = script

    def start(self, run):
        return run

    def wait(self, handle, timeout=None):
        return executors.Finished(0)

    def collect(self, run, handle, finished):
        node = Node.objects.select_related("task").get(pk=int(run.workdir.name.split("-")[0]))
        control = "\n".join(json.dumps(operation) for operation in self.script(node))
        return executors.Outcome(command="scripted", exit_code=0, timed_out=False, duration=0.0, outputs=[], missing=[], stderr_tail="", control=control)


PROMISE_KINDS = ["no_new_nodes", "no_new_edges", "only_tasks", "no_edges_from", "no_edges_to", "max_nodes", "shape", "only_edges", "component"]
# Shapes over the tasks: anything, some tasks only, a fixed chain, a name no task has, endless names.
SHAPES = ["[DES]( [DES])*", "D( [DE])*", "(D|S)( (D|S))*", "D E S", "(D )*S", "X( X)*", r"\w+( \w+)*", r"D\w*( \w+)*"]


def promise_of(data, kind, keys, count):
    """A random promise of ``kind`` about a graph with node ``keys`` and ``count`` nodes."""
    if kind == "only_tasks":
        return {"kind": kind, "tasks": data.draw(st.lists(st.sampled_from(TASKS), min_size=1, max_size=3, unique=True))}
    if kind in ("no_edges_from", "no_edges_to"):
        return {"kind": kind, "nodes": data.draw(st.lists(st.sampled_from(keys), min_size=1, max_size=2, unique=True))}
    if kind == "max_nodes":
        return {"kind": kind, "value": max(1, count + data.draw(st.integers(-1, 3)))}
    if kind == "shape":
        return {"kind": kind, "pattern": data.draw(st.sampled_from(SHAPES))}
    if kind == "only_edges":
        pairs = st.lists(st.sampled_from(TASKS), min_size=2, max_size=2)
        return {"kind": kind, "edges": data.draw(st.lists(pairs, min_size=1, max_size=5, unique_by=tuple))}
    if kind == "component":
        ends = data.draw(st.lists(st.sampled_from(keys), min_size=2, max_size=2, unique=True))
        return {"kind": kind, "from": ends[0], "to": ends[1], "alternatives": [data.draw(st.sampled_from(["", "D", "[DES]( [DES])*", "E( E)*"]))]}
    return {"kind": kind}


@st.composite
def jobs(draw):
    """Steps s0..sN: each after some earlier ones, some conditional on s0's output, some a foreach over s0's items."""
    count = draw(st.integers(1, 4))
    steps = []
    for index in range(count):
        fields = {}
        if index:
            fields["after"] = [f"s{n}" for n in draw(st.lists(st.integers(0, index - 1), min_size=1, max_size=2, unique=True))]
            fields["when"] = draw(st.sampled_from(["", "", "s0.go == true", "s0.go == false"]))
            if draw(st.booleans()):
                fields["foreach"] = {"output": "s0.items"}
        steps.append((f"s{index}", draw(st.sampled_from(["D", "D", "E", "S"])), fields))
    promises = draw(st.lists(st.sampled_from(PROMISE_KINDS), max_size=1))
    return steps, promises


def script_for(data):
    """What each step sends: s0 its outputs; a dynamic step random growth and promises."""

    def script(node):
        operations = []
        if node.key == "s0":
            operations.append({"op": "output", "name": "go", "value": data.draw(st.booleans())})
            operations.append({"op": "output", "name": "items", "value": data.draw(st.lists(st.sampled_from("xyz"), max_size=3))})
        state = engine.graph_state(node.submission_id)
        if not node.task.dynamic or len(state.nodes) >= MAX_GRAPH:
            return operations
        keys = sorted(state.nodes)
        pending = [key for key in keys if state.nodes[key][1] == "pending"]
        for number in range(data.draw(st.integers(0, 3))):
            choice = data.draw(st.sampled_from(["add_node", "add_node", "add_node", "add_edge", "promise"]))
            if choice == "add_node":
                operation = {"op": "add_node", "key": f"{node.key}_n{number}", "task": data.draw(st.sampled_from(TASKS))}
                if data.draw(st.booleans()):
                    operation["after"] = data.draw(st.lists(st.sampled_from(keys), max_size=2, unique=True))
                if pending and data.draw(st.booleans()):
                    operation["before"] = data.draw(st.lists(st.sampled_from(pending), max_size=1))
            elif choice == "add_edge":
                operation = {"op": "add_edge", "from": data.draw(st.sampled_from(keys)), "to": data.draw(st.sampled_from(keys))}
            else:
                kinds = PROMISE_KINDS if len(keys) > 1 else [kind for kind in PROMISE_KINDS if kind != "component"]
                operation = {"op": "promise", **promise_of(data, data.draw(st.sampled_from(kinds)), keys, len(keys))}
            operations.append(operation)
        return operations

    return script


def run_and_picture(job, script, monkeypatch):
    """Run ``job`` one node at a time; return (final graph, added_by, [(picture, promises)] from registration on, final status)."""
    monkeypatch.setattr(executors, "_registry", {**executors._registry, "localhost": ScriptedExecutor(script)})
    pictures = [(diagrams.job_graph(job), [promise.as_dict() for promise in job.promises.all()])]
    submission = engine.submit(job)
    queue = list(submission.ready)
    while True:
        submission.refresh_from_db()
        pictures.append((diagrams.submission_graph(submission), engine.active_promises(submission)))
        if not queue:
            break
        queue.extend(engine.run_node(queue.pop(0)))
    engine.advance(submission.pk)
    submission.refresh_from_db()
    assert submission.status in SubmissionStatus.TERMINAL
    final = diagrams.submission_graph(submission)
    added_by = dict(Node.objects.filter(submission=submission).values_list("key", "added_by"))
    return final, added_by, pictures, submission.status


def owner(wildcard):
    """The key of the node a wildcard stands for the future of."""
    return wildcard.get("of", wildcard["key"].removesuffix("*"))


def assert_instance(final, added_by, picture, promises):
    """Each final node is a node of the picture or stands for one of its wildcards; edges and counts agree."""
    shown = {node["key"]: node for node in picture["nodes"] if node["kind"] == "node"}
    wildcard_of = {owner(node): node for node in picture["nodes"] if node["kind"] == "wildcard"}
    now = {node["key"]: node for node in final["nodes"]}
    assert set(shown) <= set(now), "a node of the picture vanished"
    for key, node in shown.items():
        if node.get("not_taken") or node["status"] in ("succeeded", "failed", "skipped", "cancelled"):
            assert now[key]["status"] == node["status"] and now[key].get("not_taken") == node.get("not_taken"), key
    standing_for = {}
    for key, node in now.items():
        if key in shown:
            continue
        adder = added_by[key]
        while adder not in shown:
            adder = added_by[adder]
        wildcard = wildcard_of.get(adder)
        assert wildcard is not None, f"node {key} came from {adder}, which the picture gave no wildcard"
        assert wildcard.get("tasks") is None or node["task"] in wildcard["tasks"], f"node {key} runs {node['task']}, not one of {wildcard['tasks']}"
        standing_for[key] = wildcard
    drawn_possible = {(edge["from"], edge["to"]) for edge in picture["edges"] if edge["kind"] == "possible"}
    for edge in final["edges"]:
        wildcard = standing_for.get(edge["to"])
        if wildcard is not None and edge["from"] == owner(wildcard):
            assert (edge["from"], wildcard["key"]) in drawn_possible, f"edge {edge['from']} -> {edge['to']} was not drawn as possible"
    for wildcard, count in Counter(item["key"] for item in standing_for.values()).items():
        most = next(node.get("most") for node in picture["nodes"] if node["key"] == wildcard)
        assert most is None or count <= most, f"{count} nodes stand for {wildcard}, at most {most}"
    rooms = [node["most"] for node in wildcard_of.values() if node.get("most") is not None]
    assert not rooms or len(standing_for) <= min(rooms)
    drawn = {(edge["from"], edge["to"]) for edge in picture["edges"] if edge["kind"] == "edge"}
    growers = [node for node in shown.values() if "edges" in node.get("may_add", [])]
    for edge in final["edges"]:
        pair = edge["from"], edge["to"]
        if pair in drawn or pair[0] in standing_for or pair[1] in standing_for:
            if pair[1] in shown and pair not in drawn:
                assert shown[pair[1]]["status"] == "pending", f"an edge {pair} into a node the picture shows started"
            continue
        assert growers and not any(p["kind"] == "no_new_edges" for p in promises), f"edge {pair} between drawn nodes was not allowed"
        assert shown[pair[1]]["status"] == "pending"


def assert_no_wildcard_without_a_choice(picture, promises):
    """No wildcard when nothing may come: no_new_nodes, max_nodes reached, or nothing left that may add."""
    wildcards = [node for node in picture["nodes"] if node["kind"] == "wildcard"]
    nodes = [node for node in picture["nodes"] if node["kind"] == "node"]
    limits = [p["value"] for p in promises if p["kind"] == "max_nodes"]
    if any(p["kind"] == "no_new_nodes" for p in promises) or (limits and len(nodes) >= min(limits)):
        assert not wildcards
    shapes_of = [shapes.compile(p["pattern"]) for p in promises if p["kind"] == "shape"]
    if any(not any(shapes.may_appear(shape, task) for task in TASKS) for shape in shapes_of):
        assert not wildcards, "a shape no task can appear in leaves no choice"
    owners = {node["key"] for node in nodes if node["status"] in ("pending", "queued", "running", "waiting")}
    assert {owner(node) for node in wildcards} <= owners


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(definition=jobs(), data=st.data())
def test_every_final_graph_is_an_instance_of_every_earlier_picture(definition, data, monkeypatch):
    steps, kinds = definition
    try:
        with transaction.atomic():
            tasks = {name: make_task(name, dynamic=name != "S") for name in TASKS}
            job = make_job("random", steps=[(key, tasks[task], fields) for key, task, fields in steps])
            keys = [key for key, _, _ in steps]
            for kind in kinds:
                if kind == "component" and len(keys) < 2:
                    continue  # a component lies between two steps
                made = promise_of(data, kind, keys, len(keys) + 1)
                JobPromise.objects.create(job=job, kind=made["kind"], spec={k: v for k, v in made.items() if k != "kind"})
            final, added_by, pictures, final_status = run_and_picture(job, script_for(data), monkeypatch)
            assert not [node for node in final["nodes"] if node["kind"] == "wildcard"]
            event("the graph grew" if len(final["nodes"]) > len(steps) else "the graph did not grow")
            event(f"ended {final_status}")
            event("a branch was not taken" if any(node.get("not_taken") for node in final["nodes"]) else "every branch was taken")
            for picture, promises in pictures:
                assert_no_wildcard_without_a_choice(picture, promises)
                assert_instance(final, added_by, picture, promises)
            raise Rollback
    except Rollback:
        pass
