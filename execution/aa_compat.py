"""Analytics Automated's predefined variables for Python and R code, for ``compat: aa`` jobs.

A_A ran a Python or R task's code with variables defined in front of it:
``I<n>`` an open (read) file for the n-th in-glob ending, ``O<n>`` an open
(write) file ``<ID><n-th out-glob ending>``, and ``P<n>`` for the n-th
parameter: ``{flag: value}`` (the value as text) for a valued one, ``True``
for a flag. A_A pasted the values into the code; here they never become code.
The code is run unchanged after a fixed prelude (Python's from a file of
its own, ``.aa_code.py``), and the prelude reads the names and values from
files in the working directory (``.aa_variables/``):

- ``I<n>``: the staged file's name (absent when the step has no such file);
- ``O<n>``: the output file's name;
- ``P<n>.flag`` and, for a valued parameter, ``P<n>.value``.

Each file holds its text as UTF-8 and nothing else, so reading it needs no
parser (base R has no JSON reader). The prelude closes every file it opened
when the code ends, as A_A's footer did.
"""
from jobs import templating

__all__ = ["VARIABLES_DIR", "script", "write_variables"]

VARIABLES_DIR = ".aa_variables"

PYTHON_PRELUDE = '''\
def _aa_define():
    import atexit, os
    folder = ".aa_variables"

    def text(name):
        with open(os.path.join(folder, name), encoding="utf-8") as source:
            return source.read()

    names, opened = os.listdir(folder), []
    defined = {}
    for name in names:
        if name[:1] in ("I", "O") and name[1:].isdigit():
            handle = open(text(name), "r" if name[0] == "I" else "w")
            opened.append(handle)
            defined[name] = handle
        elif name.startswith("P") and name.endswith(".flag"):
            number = name[:-len(".flag")]
            if number + ".value" in names:
                defined[number] = {text(name): text(number + ".value")}
            else:
                defined[number] = True
    atexit.register(lambda: [handle.close() for handle in opened])
    return defined


globals().update(_aa_define())
del _aa_define
with open(".aa_code.py", encoding="utf-8") as _aa_source:
    _aa_code = compile(_aa_source.read(), ".aa_code.py", "exec")
del _aa_source
exec(_aa_code)
'''

R_PRELUDE = '''\
local({
  folder <- ".aa_variables"
  text <- function(name) {
    path <- file.path(folder, name)
    size <- file.info(path)$size
    if (size == 0) return("")
    value <- readChar(path, size, useBytes = TRUE)
    Encoding(value) <- "UTF-8"
    value
  }
  names <- list.files(folder)
  opened <- list()
  for (name in names) {
    if (grepl("^[IO][0-9]+$", name)) {
      handle <- file(text(name), if (substr(name, 1, 1) == "I") "r" else "w")
      opened[[name]] <- handle
      assign(name, handle, envir = globalenv())
    } else if (grepl("^P[0-9]+[.]flag$", name)) {
      number <- sub("[.]flag$", "", name)
      if (paste0(number, ".value") %in% names) {
        value <- list()
        value[[text(name)]] <- text(paste0(number, ".value"))
      } else {
        value <- TRUE
      }
      assign(number, value, envir = globalenv())
    }
  }
  assign(".aa_opened", opened, envir = globalenv())
})
'''

R_FOOTER = '''
for (.aa_handle in .aa_opened) try(close(.aa_handle), silent = TRUE)
'''


def write_variables(run):
    """Write the names and values the prelude reads into ``<workdir>/.aa_variables/``."""
    folder = run.workdir / VARIABLES_DIR
    folder.mkdir()
    for number, ending in enumerate(run.in_endings, start=1):
        names = run.in_names[number - 1] if run.in_names else f"{run.file_id}{ending}"
        name = names[-1] if isinstance(names, list) and names else names
        if isinstance(name, str) and (run.workdir / name).is_file():
            _write(folder / f"I{number}", name)
    for number, ending in enumerate(run.out_endings, start=1):
        _write(folder / f"O{number}", f"{run.file_id}{ending}")
    for number, (spec, value) in enumerate(run.params, start=1):
        _write(folder / f"P{number}.flag", spec.flag)
        if not spec.bool_valued:
            _write(folder / f"P{number}.value", templating.as_text(value))


def script(run):
    """The script to run: the fixed prelude and the task's code as written (A_A put no placeholders into code).

    Python's code goes to a file of its own (``.aa_code.py``), compiled and run
    by the prelude, so that its line numbers and ``from __future__`` imports
    are its own.
    """
    code = run.executable.replace("\r", "")  # as A_A did before running it
    if run.behaviour == "r":
        return R_PRELUDE + code + "\n" + R_FOOTER
    (run.workdir / ".aa_code.py").write_text(code + "\n", encoding="utf-8")
    return PYTHON_PRELUDE


def _write(path, text):
    path.write_bytes(text.encode("utf-8"))
