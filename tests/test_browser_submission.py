"""The submission page and the step page in a real browser, at phone and desktop widths.

Every state a submission page can be in (running, finished, failed, waiting with an answer box,
a big fan-out) and the step page fit 390 and 1366 px with nothing scrolling sideways; the
controls are reached by keyboard, and Cancel asks first in a dialog.
"""
import pytest
from playwright.sync_api import expect

from execution import dispatch, engine
from execution.local import SynchronousRunner
from execution.models import Submission
from tests.browser_support import DESKTOP, PHONE, chromium, fits, tab, visit, watch_policy  # noqa: F401 (fixtures)
from tests.factories import make_job, make_parameter, make_task
from tests.test_submission_page import fan_out

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

LONG = "a_rather_long_parameter_value_without_any_spaces_in_it_" * 3


def finished(ok=True):
    task = make_task("count_lines_of_the_upload" if ok else "fail_with_a_long_reason", "echo counting >&2; wc -l < $I1" if ok else "for i in $(seq 1 30); do echo this step failed with a long reason line $i >&2; done; exit 3",
                     in_glob=".input", stdout_glob=".count")
    make_parameter(task, "label", default=LONG, label="A label for the report")
    job = make_job("phone_check" if ok else "phone_fail", steps=[("count_the_lines_of_the_uploaded_file", task)])
    submission = SynchronousRunner(job, input=b"a\nb\n").init().process()
    assert submission.status == ("complete" if ok else "error"), submission.last_message
    return submission


def running():
    job = make_job("phone_running", steps=[make_task("slow_step_with_a_long_name", "sleep 60")])
    submission = engine.submit(job, input_data=b"x\n")
    Submission.objects.filter(pk=submission.pk).update(status="running")
    return submission


def waiting(choices=()):
    ask = make_task(f"ask{len(choices)}", "true", input_prompt="Publish the report to the whole team? Think about it first.", input_choices=list(choices))
    job = make_job(f"phone_wait{len(choices)}", steps=[("ask", ask), ("publish", make_task(f"publish{len(choices)}", "true"), {"after": ["ask"]})])
    submission = engine.submit(job)
    dispatch.start(submission)
    submission.refresh_from_db()
    assert submission.status == "waiting", submission.last_message
    return submission


@pytest.fixture
def pages(transactional_db, broker):
    failed = finished(ok=False)
    return {
        "running": f"/submissions/{running().uuid}/",
        "finished": f"/submissions/{finished().uuid}/",
        "failed": f"/submissions/{failed.uuid}/",
        "step of the failed one": f"/submissions/{failed.uuid}/nodes/count_the_lines_of_the_uploaded_file/",
        "waiting, free text": f"/submissions/{waiting().uuid}/",
        "waiting, choices": f"/submissions/{waiting(['yes', 'no']).uuid}/",
        "big fan-out": f"/submissions/{fan_out(600).uuid}/",
        "its list": f"/submissions/{Submission.objects.get(job__name='wide').uuid}/nodes/?by=split&task=M",
        "cancel confirmation": f"/submissions/{Submission.objects.get(job__name='phone_running').uuid}/cancel/confirm/",
    }


@pytest.mark.parametrize("size", [PHONE, DESKTOP], ids=["390px", "1366px"])
def test_every_submission_state_and_the_step_page_fit_without_sideways_scrolling(live_server, tab, pages, size):
    seen = watch_policy(tab)
    tab.set_viewport_size(size)
    for name, path in pages.items():
        visit(tab, f"{live_server.url}{path}")
        assert fits(tab), f"{name} at {size['width']} px is {tab.evaluate('document.documentElement.scrollWidth')} px wide"
        # What users found off-screen on a phone: the answer box and the failure's reason.
        for selector in (".waiting form", "#last-message", ".failed pre.reason"):
            if tab.locator(selector).count():
                box = tab.locator(selector).first.bounding_box()
                assert box["x"] >= 0 and box["x"] + box["width"] <= size["width"] + 1, (name, selector, box)
    assert seen == []


def test_the_controls_are_reached_by_keyboard_and_cancel_asks_first_in_a_dialog(live_server, tab, broker, transactional_db):
    submission = waiting(["yes", "no"])
    tab.set_viewport_size(PHONE)
    tab.goto(f"{live_server.url}/submissions/{submission.uuid}/")
    wanted = {"Pause": tab.get_by_role("button", name="Pause"), "Cancel…": tab.get_by_role("link", name="Cancel…"),
              "yes": tab.get_by_role("button", name="yes", exact=True), "no": tab.get_by_role("button", name="no", exact=True),
              "step ask": tab.get_by_role("link", name="ask", exact=True), "Run again": tab.get_by_role("link", name="Run again")}
    for name, control in wanted.items():
        control.first.evaluate("(el, name) => el.dataset.wanted = name", name)
    reached = set()
    for _ in range(60):
        tab.keyboard.press("Tab")
        reached.add(tab.evaluate("document.activeElement.dataset.wanted || ''"))
        if set(wanted) <= reached:
            break
    assert set(wanted) <= reached, reached

    tab.get_by_role("link", name="Cancel…").focus()
    tab.keyboard.press("Enter")
    dialog = tab.locator("dialog#confirm")
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text("Cancel phone_wait2")
    dialog.get_by_role("button", name="Keep it as it is").click()
    expect(dialog).to_be_hidden()
    submission.refresh_from_db()
    assert submission.status == "waiting"  # nothing happened on one click

    tab.get_by_role("link", name="Cancel…").click()
    dialog.get_by_role("button", name="Cancel the submission").click()
    expect(tab.locator("#status")).to_have_text("cancelled")
    submission.refresh_from_db()
    assert submission.status == "cancelled"


def test_an_answer_button_answers_and_the_page_shows_the_answer(live_server, tab, broker, transactional_db):
    submission = waiting(["yes", "no"])
    tab.goto(f"{live_server.url}/submissions/{submission.uuid}/")
    tab.get_by_role("button", name="no", exact=True).click()
    expect(tab.locator('tr[data-node="ask"] td.message')).to_contain_text("answered no by the holder of its link")
    assert submission.nodes.get(key="ask").outputs["input"] == "no"


def test_a_diagram_box_leads_to_its_step_page(live_server, tab, broker, transactional_db):
    submission = finished()
    tab.goto(f"{live_server.url}/submissions/{submission.uuid}/")
    tab.locator("figure.diagram svg a").first.click()
    tab.wait_for_url(f"**/submissions/{submission.uuid}/nodes/count_the_lines_of_the_uploaded_file/")
    expect(tab.locator("pre.log-text[data-stream=stderr]")).to_have_text("counting")
