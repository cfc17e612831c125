"""The executable placeholder language, rule by rule, on plain data."""
import shlex
import subprocess

import pytest

from jobs.templating import ParamSpec, RenderContext, TemplateError, placeholders, render, render_parameter, split_endings


def context(**overrides):
    values = {"file_id": "ID", "in_endings": [".input"], "out_endings": [".out"], "params": [], "value": "", "tmp": "/srv/sluice/n1"}
    return RenderContext(**{**values, **overrides})


def test_it_renders_the_seed_services_worked_example():
    params = [(ParamSpec(flag="-z"), 12), (ParamSpec(flag="-lm", bool_valued=True), True)]
    line = render("/usr/bin/example_binary $P1 -u 123 -la $P2 -input $I1 -out $O1", context(params=params))
    assert line == "/usr/bin/example_binary -z 12 -u 123 -la -lm -input ID.input -out ID.out"


def test_in_and_out_placeholders_follow_glob_order():
    line = render("$I2 $I1 $O2", context(in_endings=[".a", ".b"], out_endings=[".x", ".y"]))
    assert line == "ID.b ID.a ID.y"


def test_a_spaced_flag_separates_flag_and_value():
    assert render_parameter(ParamSpec(flag="-n"), 5) == "-n 5"


def test_an_unspaced_flag_joins_flag_and_value():
    assert render_parameter(ParamSpec(flag="--gap=", spacing=False), 3) == "--gap=3"


def test_a_switchless_parameter_is_the_value_alone():
    assert render_parameter(ParamSpec(flag="-p", switchless=True), "abc") == "abc"


def test_a_bool_valued_parameter_is_its_flag_when_true_and_nothing_when_false():
    spec = ParamSpec(flag="-v", bool_valued=True)
    assert render_parameter(spec, True) == "-v"
    assert render_parameter(spec, "true") == "-v"
    assert render_parameter(spec, False) == ""
    assert render_parameter(spec, "false") == ""


def test_a_missing_value_renders_as_nothing():
    assert render_parameter(ParamSpec(flag="-n"), None) == ""
    assert render_parameter(ParamSpec(flag="-n"), "") == ""


def test_value_tmp_and_id_are_substituted():
    line = render("cmd $VALUE $TMP/$ID.log", context(value="ACGT", tmp="/w/n 1"))
    assert line == "cmd ACGT '/w/n 1'/ID.log"


def test_other_dollar_names_pass_through_to_the_shell():
    executable = "awk '{ print $1 }' $HOME ${PATH} $IDENTITY $TMPDIR $VALUES $I1"
    assert render(executable, context()) == "awk '{ print $1 }' $HOME ${PATH} $IDENTITY $TMPDIR $VALUES ID.input"


@pytest.mark.parametrize(
    "hostile",
    ["$(touch PWNED)", "`touch PWNED`", "; touch PWNED", "&& touch PWNED", "a\ntouch PWNED", "' ; touch PWNED ; '", "| touch PWNED"],
)
def test_submitted_values_never_run_in_the_shell(tmp_path, hostile):
    params = [(ParamSpec(flag="-e"), hostile), (ParamSpec(switchless=True), hostile), (ParamSpec(flag="--x=", spacing=False), hostile)]
    line = render("printf '%s\\n' $P1 $P2 $P3 $VALUE", context(params=params, value=hostile))
    completed = subprocess.run(["/bin/sh", "-c", line], cwd=tmp_path, capture_output=True, text=True)
    assert completed.returncode == 0
    assert not (tmp_path / "PWNED").exists()
    assert completed.stdout.count(hostile.split("\n")[0]) >= 4


def test_code_rendering_writes_values_as_string_literals():
    params = [(ParamSpec(flag="-n"), 'x"); import os; os.system("touch PWNED")  #')]
    code = render("value = $P1\npath = '$I1'", context(params=params), language="code")
    namespace = {}
    exec(compile(code, "<test>", "exec"), namespace)  # noqa: S102 - the point is that it stays a string
    assert namespace["value"] == 'x"); import os; os.system("touch PWNED")  #'
    assert namespace["path"] == "ID.input"


def test_an_undefined_placeholder_is_an_error_that_names_it():
    with pytest.raises(TemplateError, match=r"\$I3 names ending 3 of in_glob but it has 1") as caught:
        render("cat $I3", context())
    assert caught.value.placeholder == "$I3"
    with pytest.raises(TemplateError, match=r"\$P2 names parameter 2"):
        render("cmd $P2", context(params=[(ParamSpec(flag="-a"), 1)]))


def test_placeholders_lists_what_an_executable_uses():
    found = placeholders("x $I1 $O12 $P3 $ID $TMP $VALUE $IDX $P0")
    assert [(p.kind, p.index) for p in found] == [("I", 1), ("O", 12), ("P", 3), ("ID", 0), ("TMP", 0), ("VALUE", 0)]


def test_split_endings_ignores_spaces_and_empty_parts():
    assert split_endings(" .a, .b ,,") == [".a", ".b"]
    assert split_endings("") == []


def test_quoting_round_trips_through_the_shell():
    value = "it's a \"test\" $HOME"
    line = render("printf %s $P1", context(params=[(ParamSpec(switchless=True), value)]))
    assert shlex.split(line)[2] == value
