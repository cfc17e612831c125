"""Automata for shape patterns: can a path of task names still grow into one that matches?

A shape pattern is a Python regular expression, matched in full against a
path written as its task names separated by single spaces (``"start m end"``).
The symbols the automaton reads are characters, so the pattern means exactly
what ``re.fullmatch`` makes of it; a task name is a run of characters between
spaces. ``interegular`` turns the pattern into a deterministic automaton;
patterns it cannot read (back-references, look-behinds, ``\\b``, ``^``/``$`` other than at the very ends)
give ``None`` from ``compile``, and are only checked on the finished graph.

A path is judged as a list of steps ``(task, optional)``; an optional step
may still drop out of the path (a pending node that may yet be skipped).
``open_start`` says more task names may still come before the path (its
first node may still gain predecessors), ``open_end`` that more may come
after it. Every answer over-approximates what may come: ``can_complete`` is
False only when no completion of the path can match.

Small API, for the promise checks and for pictures of possible futures:
``compile``, ``begin``, ``feed``, ``accepts``, ``can_complete``, ``allowed_next``,
``may_appear`` and ``names`` (which task names a matching path may hold at all).
A task name counts as read only where the pattern lets a name end: pattern
``ab`` allows no node of task ``a``.
"""
import functools

import interegular

__all__ = ["Shape", "accepts", "allowed_next", "begin", "can_complete", "compile", "feed", "may_appear", "names"]


class Shape:
    """A compiled pattern: the automaton, and which of its states can still reach acceptance."""

    def __init__(self, pattern, fsm):
        self.pattern = pattern
        self.fsm = fsm
        self.live = _live_states(fsm)
        self.after_anything = _reachable(fsm, fsm.initial) & self.live
        # States where a task name may end: the path may stop there, or a space and another name follow.
        self.ends = frozenset(state for state in self.live if state in fsm.finals or self.step(state, " ") is not None)

    def step(self, state, char):
        """The state after reading ``char``, or None when no match is possible any more."""
        following = self.fsm.map.get(state, {}).get(self.fsm.alphabet[char])
        return following if following in self.live else None

    def read(self, state, task):
        """The state after reading the whole name ``task`` from ``state``, or None when no match can follow it."""
        for char in task:
            state = self.step(state, char)
            if state is None:
                return None
        return state if state in self.ends else None

    def starts(self):
        """The states in which a task name may begin: the start, and every state just after a space."""
        found = {self.fsm.initial} if self.fsm.initial in self.live else set()
        for state in self.live:
            following = self.step(state, " ")
            if following is not None:
                found.add(following)
        return frozenset(found)


@functools.lru_cache(maxsize=256)
def compile(pattern):  # noqa: A001 - the module's verb, as in re.compile
    """Return the ``Shape`` of ``pattern``, or None when the automaton library cannot read it."""
    try:
        return Shape(pattern, interegular.parse_pattern(_without_end_anchors(pattern)).to_fsm())
    except (interegular.patterns.Unsupported, interegular.patterns.InvalidSyntax, NotImplementedError, RecursionError):
        return None


def _without_end_anchors(pattern):
    """Drop a leading ``^`` and a trailing ``$``: a full match anchors both ends anyway (paths hold no newline)."""
    if pattern.startswith("^"):
        pattern = pattern[1:]
    escapes = len(pattern[:-1]) - len(pattern[:-1].rstrip("\\"))
    if pattern.endswith("$") and escapes % 2 == 0:
        pattern = pattern[:-1]
    return pattern


def begin(shape, open_start=False):
    """The configurations before a path's first task: ``{(state, something read yet)}``.

    With ``open_start``, any task names may still come first, so any state reachable
    from the start by reading something counts too.
    """
    configs = {(shape.fsm.initial, False)} if shape.fsm.initial in shape.live else set()
    if open_start:
        configs |= {(state, True) for state in shape.after_anything}
    return frozenset(configs)


def feed(shape, configs, task, optional=False):
    """The configurations after a path step of ``task`` (kept or, if ``optional``, dropped)."""
    result = set(configs) if optional else set()
    for state, started in configs:
        if started:
            state = shape.step(state, " ")
        if state is not None:
            state = shape.read(state, task)
        if state is not None:
            result.add((state, True))
    return frozenset(result)


def accepts(shape, configs, open_end=False):
    """Can a path that reached ``configs`` end in a match? With ``open_end`` more may follow."""
    if open_end:
        return bool(configs)  # every configuration kept is live: something can still complete it
    return any(state in shape.fsm.finals for state, _ in configs)


def can_complete(shape, path, open_start=False, open_end=False):
    """Can ``path`` (task names, or ``(task, optional)`` pairs) still become a path that matches?"""
    configs = begin(shape, open_start)
    for item in path:
        task, optional = (item, False) if isinstance(item, str) else item
        configs = feed(shape, configs, task, optional)
        if not configs:
            return False
    return accepts(shape, configs, open_end)


def allowed_next(shape, prefix, candidates):
    """The task names of ``candidates`` that may follow ``prefix`` on a path that can still match."""
    configs = begin(shape)
    for task in prefix:
        configs = feed(shape, configs, task)
    return {task for task in candidates if feed(shape, configs, task)}


def may_appear(shape, task):
    """Can a node of ``task`` lie on some path that matches, anywhere along it?"""
    return any(shape.read(state, task) is not None for state in shape.starts())


def names(shape, limit=256):
    """Every task name that may appear on a matching path, or None when there are more than ``limit`` (``\\w+``: endless).

    A name is a run of characters other than a space, read from a state where
    a name may begin to one where it may end.
    """
    found = set()

    def walk(state, name, on_path):
        if state in shape.ends and name:
            found.add(name)
            if len(found) > limit:
                return False
        for char, following in _moves(shape, state):
            if char == " ":
                continue
            if char is interegular.fsm.anything_else or following in on_path:
                return False  # "any other character", or a cycle within a name: names without end
            if not walk(following, name + char, on_path | {following}):
                return False
        return True

    for start in shape.starts():
        if not walk(start, "", frozenset({start})):
            return None
    return frozenset(found)


def _moves(shape, state):
    """``(character, live state it leads to)`` for each character the automaton knows by name, and ``anything_else``."""
    moves = shape.fsm.map.get(state, {})
    for char, symbol in shape.fsm.alphabet.items():
        following = moves.get(symbol)
        if following in shape.live:
            yield char, following


def _live_states(fsm):
    """States from which some string leads to acceptance."""
    parents = {}
    for state, moves in fsm.map.items():
        for following in moves.values():
            parents.setdefault(following, set()).add(state)
    live, stack = set(fsm.finals), list(fsm.finals)
    while stack:
        for parent in parents.get(stack.pop(), ()):
            if parent not in live:
                live.add(parent)
                stack.append(parent)
    return frozenset(live)


def _reachable(fsm, start):
    """States reached from ``start`` by reading at least one character."""
    seen, stack = set(), [start]
    while stack:
        for following in fsm.map.get(stack.pop(), {}).values():
            if following not in seen:
                seen.add(following)
                stack.append(following)
    return frozenset(seen)
