"""Ready sets, skipping, outcomes and edge derivation, on plain data."""
import pytest

from execution.graph import ancestors_nearest_first, outcome, plan
from jobs.dag import StepGraphError, StepSpec, check_steps, step_edges

DIAMOND = [("a", "b"), ("a", "c"), ("b", "d"), ("c", "d")]


def statuses(**values):
    return {key: values.get(key, "pending") for key in "abcd"}


def test_only_roots_are_ready_at_first():
    assert plan(statuses(), DIAMOND).ready == ["a"]


def test_parallel_branches_become_ready_together():
    assert plan(statuses(a="succeeded"), DIAMOND).ready == ["b", "c"]


def test_a_join_waits_for_every_predecessor():
    assert plan(statuses(a="succeeded", b="succeeded", c="running"), DIAMOND).ready == []
    assert plan(statuses(a="succeeded", b="succeeded", c="cached"), DIAMOND).ready == ["d"]


def test_nodes_already_started_are_not_ready_again():
    assert plan(statuses(a="queued"), DIAMOND).ready == []


def test_a_failed_predecessor_blocks_its_successors():
    assert plan(statuses(a="failed"), DIAMOND).ready == []


def test_a_disabled_node_is_skipped_and_its_dependants_still_run():
    result = plan(statuses(a="succeeded"), DIAMOND, disabled={"b"})
    assert result.skip == ["b"]
    assert result.ready == ["c"]


def test_a_chain_of_disabled_nodes_is_skipped_in_one_plan():
    result = plan({"a": "pending", "b": "pending", "c": "pending"}, [("a", "b"), ("b", "c")], disabled={"a", "b"})
    assert result.skip == ["a", "b"]
    assert result.ready == ["c"]


def test_an_edge_to_an_unknown_node_is_refused():
    with pytest.raises(ValueError, match="unknown node 'z'"):
        plan({"a": "pending"}, [("a", "z")])


@pytest.mark.parametrize(
    "values, expected",
    [
        ({"a": "succeeded", "b": "skipped", "c": "cached"}, "complete"),
        ({"a": "succeeded", "b": "failed", "c": "cancelled"}, "error"),
        ({"a": "succeeded", "b": "cancelled"}, "cancelled"),
        ({"a": "succeeded", "b": "running"}, None),
        ({"a": "waiting"}, None),
    ],
)
def test_outcome_follows_node_statuses(values, expected):
    assert outcome(values) == expected


def test_ancestors_come_nearest_first():
    assert ancestors_nearest_first("d", DIAMOND) == ["b", "c", "a"]
    assert ancestors_nearest_first("a", DIAMOND) == []


def test_equal_orderings_run_in_parallel_after_the_previous_group():
    steps = [StepSpec("a", 0), StepSpec("b", 1), StepSpec("c", 1), StepSpec("d", 2)]
    assert sorted(step_edges(steps)) == sorted(DIAMOND)


def test_explicit_after_edges_replace_orderings():
    steps = [StepSpec("a", 5), StepSpec("b", 0, ("a",)), StepSpec("c", 0)]
    assert step_edges(steps) == [("a", "b")]


def test_it_rejects_a_cyclic_job_naming_the_cycle():
    steps = [StepSpec("a", 0, ("c",)), StepSpec("b", 0, ("a",)), StepSpec("c", 0, ("b",))]
    with pytest.raises(StepGraphError, match="steps form a cycle") as caught:
        check_steps(steps)
    cycle = caught.value.cycle
    assert cycle[0] == cycle[-1] and set(cycle) == {"a", "b", "c"}


def test_it_rejects_unknown_after_keys_and_duplicates():
    with pytest.raises(StepGraphError, match="step 'b' runs after unknown step 'x'"):
        check_steps([StepSpec("a"), StepSpec("b", 0, ("x",))])
    with pytest.raises(StepGraphError, match="duplicate step key 'a'"):
        check_steps([StepSpec("a"), StepSpec("a")])
    with pytest.raises(StepGraphError, match="cannot run after itself"):
        check_steps([StepSpec("a", 0, ("a",))])
