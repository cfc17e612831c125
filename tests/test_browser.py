"""The pages in a real browser: Debian's Chromium driven by Playwright against the live server.

Submissions run on the in-process Dramatiq worker, so a page shows a job really
running. `SLUICE_SCREENSHOTS=1` also writes docs/screenshots/<page>.png and <page>-phone.png.
"""
import json
import os
import re
import shlex

import pytest
from playwright.sync_api import expect

from execution import intake, workers
from execution.models import Submission
from tests.browser_support import DESKTOP, DOC_SCREENSHOTS, PHONE, SUBMISSION_URL, chromium, fits, tab, visit, watch_policy  # noqa: F401 (fixtures)
from tests.conftest import wait_for
from tests.factories import make_job, make_parameter, make_task

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

# Step 2 turns step 1's count into a JSON and a CSV result, so both previews have something to show.
REPORT = ("""n=$(cat $I1); printf '{"label": "%s", "lines": %s, "scaled": %s}' $P1 "$n" "$((n * $P2))" > $O1; """
          """printf 'label,lines,scaled\\n%s,%s,%s\\n' $P1 "$n" "$((n * $P2))" > $O2""")


@pytest.fixture
def report_job(transactional_db):
    tally = make_task("count", "sleep 1; wc -l < $I1", in_glob=".input", stdout_glob=".count", description="Count the lines of the upload.")
    report = make_task("report", REPORT, in_glob=".count", out_glob=".json,.csv", description="Write the count as JSON and CSV.")
    make_parameter(report, "label", required=True, description="A name to put in the report.")
    make_parameter(report, "scale", type="int", default="2", description="Multiply the count by this.")
    return make_job("line_report", steps=[("tally", tally), ("summarise", report)], description="Count the lines of a file and report them as JSON and CSV.")


@pytest.fixture
def start_worker(broker):
    """Start the in-process worker when the test says so; it is stopped at the end."""
    started = []
    yield lambda: started.append(workers.start_worker(None, threads=4))
    for running in started:
        running.stop()


def completed_submission(job, label="demo", lines=b"a\nb\nc\n"):
    """Submit as an anonymous visitor would and wait until the worker has finished it."""
    submission = wait_for(intake.accept(job.name, params={"report_label": label}, input_data=lines))
    assert submission.status == "complete", submission.last_message
    return submission


def test_a_form_submission_runs_and_its_page_follows_it_without_reloading(live_server, start_worker, tab, report_job, tmp_path):
    upload = tmp_path / "lines.txt"
    upload.write_text("one\ntwo\nthree\nfour\n")
    tab.goto(f"{live_server.url}/jobs/line_report/")
    tab.get_by_label("report_label").fill("weekly")
    tab.get_by_label("report_scale").fill("10")
    tab.get_by_label("Input file").set_input_files(upload)
    tab.get_by_role("button", name="Submit to line_report").click()

    tab.wait_for_url(SUBMISSION_URL)
    tab.evaluate("window.__marker = 1")
    # No worker runs yet, so the page surely shows the submission before it ends (however slow the machine).
    expect(tab.locator("#status")).to_have_text("submitted")
    start_worker()
    expect(tab.locator("#status")).to_have_text("complete", timeout=60_000)
    expect(tab.get_by_role("link", name=re.compile(r"^\w+\.json$"))).to_be_visible()
    assert tab.evaluate("window.__marker") == 1, "the page was reloaded"

    submission = Submission.objects.get()
    assert tab.url.endswith(f"/submissions/{submission.uuid}/")
    assert submission.status == "complete"
    assert submission.params == {"report_label": "weekly", "report_scale": 10}
    with submission.results.get(ending=".json").file.open("rb") as handle:
        assert json.load(handle) == {"label": "weekly", "lines": 4, "scaled": 40}


def test_results_open_as_previews_json_pretty_and_csv_as_a_table(live_server, worker, tab, report_job):
    submission = completed_submission(report_job)
    tab.goto(f"{live_server.url}/submissions/{submission.uuid}/")

    tab.get_by_role("link", name="summarise.json", exact=True).click()
    expect(tab.locator("h1")).to_have_text(f"{submission.uuid}.json")
    expect(tab.locator("pre.preview")).to_have_attribute("data-kind", "json")
    assert tab.locator("pre.preview").inner_text() == '{\n  "label": "demo",\n  "lines": 3,\n  "scaled": 6\n}'

    tab.go_back()
    tab.get_by_role("link", name="summarise.csv", exact=True).click()
    table = tab.locator("table.csv")
    assert table.locator("th").all_inner_texts() == ["label", "lines", "scaled"]
    assert table.locator("td").all_inner_texts() == ["demo", "3", "6"]


def test_the_diagrams_name_every_step(live_server, worker, tab, report_job):
    submission = completed_submission(report_job)
    for path in ("/jobs/line_report/", f"/submissions/{submission.uuid}/"):
        tab.goto(f"{live_server.url}{path}")
        drawing = tab.locator("figure.diagram svg").text_content()
        assert "tally" in drawing and "summarise" in drawing, path


def test_form_errors_are_shown_next_to_their_fields(live_server, tab, report_job):
    tab.goto(f"{live_server.url}/jobs/line_report/")
    tab.get_by_label("report_scale").fill("1.5")
    tab.get_by_role("button", name="Submit to line_report").click()

    expect(tab.locator("#id_report_label-error")).to_contain_text("is required")
    expect(tab.locator("#id_report_scale-error")).to_contain_text("must be an integer, got '1.5'")
    for name in ("report_label", "report_scale"):
        field = tab.locator(".field.invalid", has=tab.locator(f"#id_{name}"))
        expect(field.locator(f"#id_{name}-error")).to_be_visible()
    # A screen reader reads the message with the field, not only when the page loads.
    expect(tab.get_by_label("report_scale")).to_have_accessible_description(re.compile(r"Multiply the count by this\. .*must be an integer"))
    expect(tab.get_by_label("report_scale")).to_have_value("1.5")
    assert Submission.objects.count() == 0


def test_on_a_phone_nothing_scrolls_sideways_and_every_control_is_reachable_by_tab(live_server, tab, report_job):
    tab.set_viewport_size(PHONE)
    for path in ("/", "/jobs/line_report/"):
        tab.goto(f"{live_server.url}{path}")
        assert tab.evaluate("document.documentElement.scrollWidth <= document.documentElement.clientWidth"), path

    # Number every control a visitor can use, then Tab through the page and see which get focus.
    count = tab.evaluate("""() => {
        const controls = [...document.querySelectorAll('a[href], button, input, select, textarea, summary, [tabindex]')]
            .filter(el => !el.disabled && el.type !== 'hidden' && el.tabIndex >= 0);
        controls.forEach((el, i) => el.dataset.control = i);
        return controls.length;
    }""")
    reached = []
    for _ in range(count + 5):
        tab.keyboard.press("Tab")
        reached.append(tab.evaluate("document.activeElement.dataset.control ?? document.activeElement.tagName"))
    assert {str(i) for i in range(count)} <= set(reached), reached
    submit = tab.get_by_role("button", name="Submit to line_report").get_attribute("data-control")
    assert submit in reached


def test_screenshots_of_every_page_type_at_desktop_and_phone_width(live_server, worker, tab, report_job, staff, tmp_path):
    """docs/screenshots/<page>.png at 1366 px and <page>-phone.png at 390 px, each page fitting its width."""
    submission = completed_submission(report_job)
    failing = make_job("breaks", steps=[make_task("breaks", "echo 'no such input' >&2; exit 3")])
    failed = wait_for(intake.accept(failing.name))
    folder = DOC_SCREENSHOTS if os.environ.get("SLUICE_SCREENSHOTS") else tmp_path
    folder.mkdir(parents=True, exist_ok=True)
    tally = submission.nodes.get(key="tally")
    pages = [
        ("/", "catalogue"), ("/jobs/line_report/", "job"), (f"/submissions/{submission.uuid}/", "submission"),
        (f"/submissions/{submission.uuid}/nodes/{tally.key}/", "step"), (f"/submissions/{failed.uuid}/", "submission-failed"),
        ("/submissions/", "recent"),
    ]
    for size, suffix in ((DESKTOP, ""), (PHONE, "-phone")):
        tab.set_viewport_size(size)
        for path, name in pages:
            visit(tab, f"{live_server.url}{path}")
            take(tab, folder / f"{name}{suffix}.png")
        visit(tab, f"{live_server.url}/jobs/line_report/")
        tab.get_by_role("button", name="Submit to line_report").click()  # no label, no file: the form shows its errors
        expect(tab.locator(".error-summary, [role=alert]").first).to_be_visible()
        take(tab, folder / f"job-errors{suffix}.png")
    tab.set_viewport_size(DESKTOP)
    visit(tab, f"{live_server.url}/admin/login/")
    tab.get_by_label("Username").fill("staff")
    tab.get_by_label("Password").fill("pw-staff-123")
    tab.get_by_role("button", name="Log in").click()
    tab.wait_for_load_state()
    for size, suffix in ((DESKTOP, ""), (PHONE, "-phone")):
        tab.set_viewport_size(size)
        for path, name in (("/submissions/", "my-submissions"), ("/account/tokens/", "tokens"),
                           (f"/admin/jobs/task/{tally.task_id}/change/", "admin-task"), (f"/admin/jobs/job/{report_job.pk}/change/", "admin-job")):
            visit(tab, f"{live_server.url}{path}")
            take(tab, folder / f"{name}{suffix}.png")
    visit(tab, f"{live_server.url}/submissions/{submission.uuid}/")
    expect(tab.locator("#status")).to_have_text("complete")


def take(tab, path):
    """A full-page screenshot of a page that fits its window; a real picture, not an empty page."""
    assert fits(tab), (tab.url, tab.viewport_size, tab.evaluate("document.documentElement.scrollWidth"))
    tab.screenshot(path=path, full_page=True)
    assert path.stat().st_size > 10_000, path



def test_a_waiting_step_is_answered_on_the_page_and_the_run_goes_on(live_server, worker, tab):
    ask = make_task("ask", "true", input_prompt="Publish it? (yes/no)")
    publish = make_task("publish", "echo published")
    job = make_job("approve_it", steps=[ask, ("publish", publish, {"after": ["ask"], "when": "ask.input == 'yes'"})])
    submission = wait_for(intake.accept(job.name), statuses=("waiting",))
    tab.goto(f"{live_server.url}/submissions/{submission.uuid}/")
    expect(tab.locator("#status")).to_have_text("waiting")
    answer = tab.get_by_label("Publish it? (yes/no)")
    answer.fill("yes")
    # The page keeps polling while the run waits; a half-typed answer must survive the refreshes.
    for _ in range(2):
        with tab.expect_response("**/live/", timeout=30_000):
            pass
    expect(answer).to_have_value("yes")
    tab.get_by_role("button", name="Answer").click()
    expect(tab.locator("#status")).to_have_text("complete", timeout=60_000)
    submission.refresh_from_db()
    assert {node.key: node.status for node in submission.nodes.all()} == {"ask": "succeeded", "publish": "succeeded"}


# A label a running step sets on its control channel: an HTML-like label whose cell links to script.
HOSTILE_LABEL = '<<TABLE><TR><TD HREF="javascript:window.hijacked=1">x</TD></TR></TABLE>>'


def test_no_page_breaks_the_content_security_policy(live_server, worker, tab, report_job, staff):
    seen = watch_policy(tab)
    operation = json.dumps({"op": "style", "node": "painter", "label": HOSTILE_LABEL})
    painter = make_task("painter", f"printf '%s\\n' {shlex.quote(operation)} >> \"$SLUICE_CONTROL\"")
    ask = make_task("ask", "true", input_prompt="Go on? (yes/no)")
    job = make_job("painted", steps=[painter, ("ask", ask, {"after": ["painter"]})])
    submission = wait_for(intake.accept(job.name), statuses=("waiting",))

    for path in ("/", "/jobs/line_report/", "/accounts/login/"):
        visit(tab, f"{live_server.url}{path}")
    visit(tab, f"{live_server.url}/submissions/{submission.uuid}/")
    for _ in range(2):  # the live fragment, swapped in twice
        with tab.expect_response("**/live/", timeout=30_000):
            pass
    drawing = tab.locator("figure.diagram svg")
    expect(drawing).to_contain_text(HOSTILE_LABEL)
    # The only links are the ones the page gives each box: to the step's own page on this site.
    links = drawing.locator("a[href], a[*|href]")
    assert {links.nth(i).get_attribute("xlink:href") for i in range(links.count())} == {
        f"/submissions/{submission.uuid}/nodes/{key}/" for key in ("painter", "ask")}
    drawing.get_by_text(HOSTILE_LABEL).click()
    tab.wait_for_url(f"**/submissions/{submission.uuid}/nodes/painter/")
    assert tab.evaluate("window.hijacked") is None

    visit(tab, f"{live_server.url}/api/docs/")
    expect(tab.locator(".swagger-ui .info .title")).to_contain_text("Sluice API", timeout=30_000)
    expect(tab.locator(".opblock").first).to_be_visible()
    visit(tab, f"{live_server.url}/admin/login/")
    tab.get_by_label("Username").fill("staff")
    tab.get_by_label("Password").fill("pw-staff-123")
    tab.get_by_role("button", name="Log in").click()
    expect(tab.locator("#site-name")).to_be_visible()
    visit(tab, f"{live_server.url}/admin/jobs/job/{job.pk}/change/")
    expect(tab.locator(".field-diagram svg")).to_contain_text("painter")
    visit(tab, f"{live_server.url}/admin/jobs/task/add/")
    assert seen == []


def test_download_all_and_the_ro_crate_download_from_the_page(live_server, worker, tab, report_job, tmp_path):
    import zipfile

    submission = completed_submission(report_job)
    visit(tab, f"{live_server.url}/submissions/{submission.uuid}/")
    with tab.expect_download() as caught:
        tab.get_by_role("link", name="Download all").click()
    archive = tmp_path / "all.zip"
    caught.value.save_as(archive)
    with zipfile.ZipFile(archive) as opened:
        names = set(opened.namelist())
        assert {"tally/tally.count", "summarise/summarise.json", "summarise/summarise.csv"} <= names, names
        assert opened.read("tally/tally.count").strip() == b"3"
    with tab.expect_download() as caught:
        tab.get_by_role("link", name="Provenance (RO-Crate)").click()
    crate = tmp_path / "crate.zip"
    caught.value.save_as(crate)
    with zipfile.ZipFile(crate) as opened:
        metadata = json.loads(opened.read("ro-crate-metadata.json"))
    ids = {entity["@id"] for entity in metadata["@graph"]}
    assert "ro-crate-metadata.json" in ids and "./" in ids
