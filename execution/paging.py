"""One page of a long list, with a count that stops at ``SLUICE_LIST_COUNT_LIMIT`` rows.

Counting every matching row costs as much as reading them all: with a
hundred thousand submissions, more than the page itself. A page is read
with one row more than it shows (is there a next page?) and the count stops
one row past the limit, so both cost the same however long the list is.
"""
from dataclasses import dataclass

from django.conf import settings

__all__ = ["Window", "window"]


@dataclass
class Window:
    """``rows`` from ``offset``; ``count`` matching rows in all: exactly, or when ``exact`` is false, more than ``count``."""

    rows: list
    offset: int
    limit: int
    more: bool
    count: int
    exact: bool


def window(queryset, offset, limit, bound=None):
    """Read ``limit`` rows of ``queryset`` from ``offset``, and count it up to ``bound`` (default: the setting).

    On the last page the count is exact without a count query: everything
    before it is known. Past the bound, the count says how many are known to
    exist (the bound, or the rows up to this page when it is further on).
    """
    bound = settings.SLUICE_LIST_COUNT_LIMIT if bound is None else bound
    rows = list(queryset[offset:offset + limit + 1])
    more = len(rows) > limit
    rows = rows[:limit]
    seen = offset + len(rows)
    if not more and (rows or offset == 0):
        return Window(rows, offset, limit, more, seen, True)
    counted = queryset.order_by()[:bound + 1].count()  # no ORDER BY: the narrowest index may answer
    if counted <= bound:
        return Window(rows, offset, limit, more, counted, True)
    return Window(rows, offset, limit, more, max(bound, seen), False)
