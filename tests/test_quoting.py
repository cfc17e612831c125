"""Where a value placeholder's quoting holds: Python, R and shell executables, on plain text."""
import subprocess

import pytest

from jobs.quoting import arithmetic_safe, problems
from jobs.templating import ParamSpec, RenderContext, render

# Values an attacker submits to break out of whatever quoting surrounds the placeholder.
HOSTILE = [
    "a; touch PWNED", "$(touch PWNED)", "`touch PWNED`", "x\ntouch PWNED\n", "' ; touch PWNED ; '", "\" ; touch PWNED ; \"",
    "x\ntouch PWNED\n'", "a[$(touch PWNED)]", "EOF\ntouch PWNED\nEOF", "\\` touch PWNED \\`", "\\'; touch PWNED; '",
]


@pytest.mark.parametrize(
    "code, line",
    [
        ("v = '$P1'", 1),
        ('v = "$VALUE"', 1),
        ('v = """$ITEM"""', 1),
        ("v = '''\nfirst\n$P1\n'''", 3),
        ("v = 'x $P1 y'", 1),
        ('v = r"$P1"', 1),
        ("v = b'$P1'", 1),
        ("v = u'$INDEX'", 1),
        ('v = f"{$P1}"', 1),
        ("v = f'{$P1}'", 1),
        ('v = rf"{$P1!r}"', 1),
        ("def f():\n    '''$P2'''\n", 2),
    ],
)
def test_python_refuses_a_value_placeholder_inside_a_string(code, line):
    [message] = problems(code, "python")
    assert f"is inside a string on line {line}" in message
    assert "write the bare placeholder" in message


@pytest.mark.parametrize("code", ["v = f$P1", "v = rb$VALUE", "v = $P1x", "v = $P1$P2"])
def test_python_refuses_a_placeholder_glued_to_a_name(code):
    # f$P1 would render as f"…", an f-string that evaluates the submitted value.
    assert problems(code, "python")
    assert all("joined to the name next to it" in message for message in problems(code, "python"))


@pytest.mark.parametrize(
    "code",
    [
        "v = $P1",
        "n = int($P1)\nprint(n * 2)",
        "with open('$O1', 'w') as out:\n    out.write($VALUE)",
        "names = \"$I1\".split()  # the gathered files, $ITEM of none",
        "v = $P1  # not '$P2' but a comment",
        "s = 'it''s' + $P1",
        "print(len($P1), '$ID', \"$TMP\")",
        "no value placeholders here: it need not even be Python (",
    ],
)
def test_python_accepts_bare_value_placeholders(code):
    assert problems(code, "python") == []


@pytest.mark.parametrize("code", ["v = 'abc $P1", "v = f\"{\" + $P1 + \"}\"", "if $P1\n  pass"])
def test_python_that_does_not_compile_is_refused_when_it_uses_values(code):
    # An unterminated quote, or an f-string only a newer Python reads: the server could not tell where strings end.
    [message] = problems(code, "python")
    assert message.startswith("the code is not valid Python on line 1")


@pytest.mark.parametrize(
    "code",
    [
        "v <- '$P1'",
        'v <- "$VALUE"',
        "v <- `$ITEM`",
        'v <- r"($P1)"',
        'v <- R"---[ x $P1 ]---"',
        "v <- r'{$P1}'",
        'v <- "multi\nline $P1"',
        "x %op$P1% y",
        "v <- 'it\\'s $P1'",
    ],
)
def test_r_refuses_a_value_placeholder_inside_quotes(code):
    [message] = problems(code, "r")
    assert "is inside a string on line" in message
    assert "e.g. v <- $" in message


@pytest.mark.parametrize("code", ["v <- r$P1", "v <- df$P1", "v <- $P1.x"])
def test_r_refuses_a_placeholder_glued_to_a_name(code):
    [message] = problems(code, "r")
    assert "joined to the name next to it" in message


@pytest.mark.parametrize(
    "code",
    [
        "v <- $P1",
        "n <- as.integer($P1)\nwriteLines(sprintf('%d', n), \"$O1\")",
        "# it's a comment, so $P1 here is harmless\nv <- $P1",
        'v <- "a # not a comment" ; w <- $P1',
        'x <- r"(a ")" ) " )" ; v <- $P1',
        "bar'(x)' ; v <- $P1",
        "v <- paste0('a', $P1, 'b')",
    ],
)
def test_r_accepts_bare_value_placeholders(code):
    assert problems(code, "r") == []


@pytest.mark.parametrize(
    "line, where",
    [
        ("echo '$P1'", "single quotes"),
        ('echo "$P1"', "double quotes"),
        ('echo "x $VALUE y"', "double quotes"),
        ("echo `echo $P1`", "backquotes"),
        ("echo $'$P1'", "$'…' quotes"),
        ("echo \\$P1", "a backslash escape"),
        ("echo ok # $P1", "a comment"),
        ("cat <<EOF\n$P1\nEOF", "a here-document"),
        ("cat <<-'END'\n\t$ITEM\n\tEND", "a here-document"),
    ],
)
def test_shell_refuses_a_value_placeholder_where_its_quoting_does_not_hold(line, where):
    [message] = problems(line, "shell", set())
    assert f"is inside {where} on line" in message
    assert "write it bare" in message


@pytest.mark.parametrize("line", ["echo $(( $P1 * 2 ))", "(( $P1 > 3 ))", "[[ $P1 -eq 1 ]]", "echo ${HOME:$P1}", "echo $[ $P1 ]"])
def test_shell_arithmetic_takes_only_numbers(line):
    [message] = problems(line, "shell", fixed=set())
    assert "evaluates text as arithmetic" in message and "type int or float" in message
    assert problems(line, "shell", fixed={"$P1"}) == []
    assert problems(line, "shell", fixed=None) == []  # types not known yet: judged once they are
    assert problems(line.replace("$P1", "$INDEX"), "shell", fixed=set()) == []


@pytest.mark.parametrize(
    "line",
    [
        "echo $P1",
        "sort $P1 $I1 > $O1",
        "grep -v '^[[:space:]]*$' $I1 | head -n $P1",
        "awk '{ print $1 }' $I1 $P1",
        "echo $(echo $P1)",
        'echo "$(echo $P1)"',
        "echo 'a' $P1 \"b\" $VALUE",
        "echo \"it's\" $P1 'say \"hi\"' $P2",
        "cat <<< $P1",
        "cat <<EOF; echo $P1\nbody\nEOF",
        "case $P1 in a) echo a;; *) echo $P1;; esac",
        "f() { echo $P1; }; f; ( echo $P1 )",
        "[ $P1 = x ] && echo $#",
        "printf '%s\\n' $P1 $P2 $VALUE $ITEM",
    ],
)
def test_shell_accepts_bare_placeholders_and_no_hostile_value_gets_out(line, tmp_path):
    assert problems(line, "shell", set()) == []
    for value in HOSTILE:
        context = RenderContext(file_id="ID", in_endings=[".in"], out_endings=[".out"], params=[(ParamSpec(switchless=True), value)] * 2, value=value, item=value)
        subprocess.run(["/bin/bash", "-c", render(line, context)], cwd=tmp_path, capture_output=True, timeout=10)
        assert not (tmp_path / "PWNED").exists(), (line, value)


def test_file_placeholders_may_stand_inside_quotes():
    assert problems("cat \"$I1\" > '$O1'; echo \"$TMP/$ID\"", "shell", set()) == []
    assert problems("open('$I1').read()", "python") == []
    assert problems("readLines('$I1')", "r") == []


def test_other_languages_have_no_rule():
    assert problems("'$P1'", "job") == []


@pytest.mark.parametrize("value, safe", [(12, True), (-0.5, True), (True, True), (None, True), ("", True), ("-3", True), ("1e5", True), ("x", False), ("a[$(id)]", False)])
def test_arithmetic_safe_values_are_numbers(value, safe):
    assert arithmetic_safe(value) is safe
