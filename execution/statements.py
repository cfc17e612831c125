"""The per-step hot path's statements, without the ORM's query compiler.

A worker runs a handful of statements per step. Through the ORM each one is
compiled afresh from a queryset, which costs more Python time than SQLite or
PostgreSQL take to execute it. Here each statement's SQL is built once per
shape from the model's own field definitions and then reused; every value
goes through its field's ``get_db_prep_save``, so rows are stored exactly as
the ORM would store them (``tests/test_statements.py`` checks both agree).

``load`` reads one row and the rows its foreign keys point to, like
``select_related(...).get(pk=...)``, converting values as the ORM does.

Only plain values are handled. ``Add(n)`` means "the column plus n"; any
other expression (``F``, ``Coalesce``...) is the caller's to send through the
ORM instead.
"""
from dataclasses import dataclass
from functools import lru_cache

from django.db import connection
from django.db.models import DateTimeField
from django.utils import timezone

__all__ = ["Add", "conditional_update", "count", "create", "insert", "insert_then_update", "load", "plain", "successors", "update"]


MAX_PARAMETERS = 65535  # in one PostgreSQL statement


class Add:
    """An update value meaning "this column plus ``amount``"."""

    __slots__ = ("amount",)

    def __init__(self, amount):
        self.amount = amount

    def __repr__(self):
        return f"Add({self.amount})"


def plain(fields):
    """True when every value can be written by these helpers (no ORM expressions)."""
    return not any(hasattr(value, "resolve_expression") for value in fields.values())


def update(model, pk, **fields):
    """``UPDATE model SET fields WHERE pk = pk``; return the number of rows changed."""
    return conditional_update(model, pk, None, fields)


def conditional_update(model, pk, statuses, fields, fence=None):
    """``UPDATE model SET fields WHERE pk = pk AND status IN statuses [AND fence = fence]``; return the number of rows changed.

    ``statuses`` None means whatever the row's status; ``fence`` None means whatever its fence.
    """
    names = tuple(fields)
    statuses = list(statuses) if statuses is not None else None
    sql = _update_sql(
        model, names, tuple(isinstance(fields[name], Add) for name in names), None if statuses is None else len(statuses), fence is not None, connection.vendor
    )
    params = [_prepare(model, name, fields[name]) for name in names] + [pk] + (statuses or []) + ([fence] if fence is not None else [])
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.rowcount


def insert(model, **values):
    """Insert one row; fields not given take their defaults (``auto_now_add``: now). Returns nothing."""
    columns = _insert_columns(model, connection.vendor)
    now = timezone.now()
    params = [_insert_value(field, values, now) for field in columns]
    with connection.cursor() as cursor:
        cursor.execute(_insert_sql(model, connection.vendor), params)


def _insert_value(field, values, now):
    if field.attname in values:
        value = values[field.attname]
    elif field.name in values:
        value = values[field.name]
        value = value.pk if field.is_relation and value is not None else value
    elif isinstance(field, DateTimeField) and (field.auto_now or field.auto_now_add):
        value = now
    else:
        value = field.get_default()
    return field.get_db_prep_save(value, connection)


def insert_then_update(model, values, other, pk, **fields):
    """``insert(model, **values)`` and ``update(other, pk, **fields)``; one statement on PostgreSQL (a data-modifying WITH).

    Returns the number of ``other`` rows changed.
    """
    if connection.vendor != "postgresql":
        insert(model, **values)
        return update(other, pk, **fields)
    columns = _insert_columns(model, connection.vendor)
    now = timezone.now()
    params = [_insert_value(field, values, now) for field in columns]
    names = tuple(fields)
    update_sql = _update_sql(other, names, tuple(isinstance(fields[name], Add) for name in names), None, False, connection.vendor)
    params += [_prepare(other, name, fields[name]) for name in names] + [pk]
    with connection.cursor() as cursor:
        cursor.execute(f"WITH made AS ({_insert_sql(model, connection.vendor)}) {update_sql}", params)
        return cursor.rowcount


def create(model, objects):
    """Insert ``objects`` (new instances of ``model``) in one statement and give them their primary keys, as ``bulk_create`` does.

    Each field's ``pre_save`` runs first (``auto_now_add`` takes the time now),
    so the rows and the instances hold what the ORM would have stored.
    Returns ``objects`` as a list.
    """
    objects = list(objects)
    if not objects:
        return objects
    if not connection.features.can_return_rows_from_bulk_insert:
        return model.objects.bulk_create(objects)
    columns = _insert_columns(model, connection.vendor)
    # What the database takes in one statement: SQLite's limit of parameters, as Django knows it, and
    # PostgreSQL's 65,535 (which Django leaves to the caller).
    size = max(1, min(connection.ops.bulk_batch_size(columns, objects), MAX_PARAMETERS // len(columns)))
    keys = []
    for start in range(0, len(objects), size):
        batch = objects[start:start + size]
        params = [field.get_db_prep_save(field.pre_save(instance, True), connection) for instance in batch for field in columns]
        with connection.cursor() as cursor:
            cursor.execute(_create_sql(model, len(batch), connection.vendor), params)
            keys += [row[0] for row in cursor.fetchall()]
    for instance, key in zip(objects, keys, strict=True):
        instance.pk = key
        instance._state.adding = False
        instance._state.db = connection.alias
    return objects


@lru_cache(maxsize=64)
def _create_sql(model, count, vendor):
    quote = connection.ops.quote_name
    columns = _insert_columns(model, vendor)
    row = f"({', '.join(['%s'] * len(columns))})"
    return (
        f"INSERT INTO {quote(model._meta.db_table)} ({', '.join(quote(field.column) for field in columns)}) "
        f"VALUES {', '.join([row] * count)} RETURNING {quote(model._meta.pk.column)}"
    )


def _prepare(model, name, value):
    if isinstance(value, Add):
        return value.amount
    return model._meta.get_field(name).get_db_prep_save(value, connection)


@lru_cache(maxsize=256)
def _update_sql(model, names, adds, count, fenced, vendor):
    quote = connection.ops.quote_name
    meta = model._meta
    assignments = []
    for name, add in zip(names, adds):
        column = quote(meta.get_field(name).column)
        assignments.append(f"{column} = {column} + %s" if add else f"{column} = %s")
    where = f"{quote(meta.pk.column)} = %s"
    if count is not None:
        where += f" AND {quote(meta.get_field('status').column)} IN ({', '.join(['%s'] * count)})"
    if fenced:
        where += f" AND {quote(meta.get_field('fence').column)} = %s"
    return f"UPDATE {quote(meta.db_table)} SET {', '.join(assignments)} WHERE {where}"


@lru_cache(maxsize=32)
def _insert_columns(model, vendor):
    return tuple(field for field in model._meta.concrete_fields if not field.primary_key)


@lru_cache(maxsize=32)
def _insert_sql(model, vendor):
    quote = connection.ops.quote_name
    columns = _insert_columns(model, vendor)
    return (
        f"INSERT INTO {quote(model._meta.db_table)} ({', '.join(quote(field.column) for field in columns)}) "
        f"VALUES ({', '.join(['%s'] * len(columns))})"
    )


def load(model, pk, *paths):
    """``model.objects.select_related(*paths).get(pk=pk)``, or None when there is no such row.

    ``paths`` follow non-null foreign keys (``"task__backend__queue_type"``).
    """
    plan = _load_plan(model, paths, connection.vendor)
    with connection.cursor() as cursor:
        cursor.execute(plan.sql, [pk])
        row = cursor.fetchone()
    return None if row is None else _instance(plan, row)


def count(model, statuses, **equal):
    """``model.objects.filter(status__in=statuses, **equal).count()``; a value None in ``equal`` means the column IS NULL."""
    names = tuple(sorted(equal))
    sql = _count_sql(model, names, tuple(equal[name] is None for name in names), len(statuses), connection.vendor)
    params = [_prepare(model, name, equal[name]) for name in names if equal[name] is not None] + list(statuses)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchone()[0]


@lru_cache(maxsize=32)
def _count_sql(model, names, nulls, count, vendor):
    quote = connection.ops.quote_name
    meta = model._meta
    where = [f"{quote(meta.get_field(name).column)} {'IS NULL' if null else '= %s'}" for name, null in zip(names, nulls)]
    where.append(f"{quote(meta.get_field('status').column)} IN ({', '.join(['%s'] * count)})")
    return f"SELECT COUNT(*) FROM {quote(meta.db_table)} WHERE {' AND '.join(where)}"


def _instance(plan, row):
    loaded = {}
    for part in plan.parts:
        values = list(row[part.start:part.start + len(part.columns)])
        for index, (column, converters) in enumerate(part.columns):
            for convert in converters:
                values[index] = convert(values[index], column, connection)
        instance = part.model.from_db(connection.alias, part.attnames, values)
        loaded[part.path] = instance
        if part.parent is not None:
            setattr(loaded[part.parent], part.via, instance)
    return loaded[()]


@dataclass(frozen=True)
class _Part:
    path: tuple  # relation names from the root model; () is the root
    model: type
    start: int  # offset of this model's columns in the row
    attnames: list
    columns: list  # [(Col, [converters])]
    parent: tuple | None
    via: str | None


@dataclass(frozen=True)
class _Plan:
    sql: str
    parts: list


@lru_cache(maxsize=32)
def _load_plan(model, paths, vendor):
    quote = connection.ops.quote_name
    parts, selects, joins, aliases = [], [], [], {(): "t0"}

    def add(path, klass, parent, via):
        alias = aliases[path]
        fields = klass._meta.concrete_fields
        columns = []
        for field in fields:
            column = field.get_col(alias)
            columns.append((column, connection.ops.get_db_converters(column) + column.get_db_converters(connection)))
            selects.append(f"{alias}.{quote(field.column)}")
        parts.append(_Part(path, klass, len(selects) - len(fields), [field.attname for field in fields], columns, parent, via))

    add((), model, None, None)
    for chain in paths:
        path, klass = (), model
        for name in chain.split("__"):
            field = klass._meta.get_field(name)
            if not field.many_to_one or field.null:
                raise ValueError(f"{klass.__name__}.{name} is not a non-null foreign key")
            parent, path, target = path, path + (name,), field.related_model
            if path not in aliases:
                aliases[path] = f"t{len(aliases)}"
                joins.append(
                    f"JOIN {quote(target._meta.db_table)} {aliases[path]} "
                    f"ON {aliases[path]}.{quote(target._meta.pk.column)} = {aliases[parent]}.{quote(field.column)}"
                )
                add(path, target, parent, name)
            klass = target
    sql = (
        f"SELECT {', '.join(selects)} FROM {quote(model._meta.db_table)} t0 {' '.join(joins)} "
        f"WHERE t0.{quote(model._meta.pk.column)} = %s"
    )
    return _Plan(sql, parts)


def successors(node_id, done):
    """One dict per out-edge of node ``node_id``: what deciding about its target needs.

    Keys: ``target_id``, ``status``, ``enabled``, ``params``, ``prompt``,
    ``when``, ``foreach``, ``source_status``, ``submission_status``,
    ``unfinished`` (1 if any of the target's predecessors is not in
    ``done``, else None), ``queue_type`` and ``priority``.
    """
    from .models import Node
    from jobs.models import Step

    done = sorted(done)
    with connection.cursor() as cursor:
        cursor.execute(_successors_sql(len(done), connection.vendor), [*done, node_id])
        names = [column[0] for column in cursor.description]
        rows = [dict(zip(names, row)) for row in cursor.fetchall()]
    params, foreach = Node._meta.get_field("params"), Step._meta.get_field("foreach")
    for row in rows:
        row["params"] = params.from_db_value(row["params"], None, connection) if row["params"] is not None else {}
        row["foreach"] = foreach.from_db_value(row["foreach"], None, connection) if row["foreach"] is not None else None
    return rows


@lru_cache(maxsize=8)
def _successors_sql(done_count, vendor):
    from jobs.models import Backend, QueueType, Step, Task

    from .models import Edge, Node, Submission

    quote = connection.ops.quote_name
    edge, node, submission = (quote(model._meta.db_table) for model in (Edge, Node, Submission))
    task, backend, queue_type, step = (quote(model._meta.db_table) for model in (Task, Backend, QueueType, Step))
    c = {name: quote(name) for name in ("id", "status", "enabled", "params", "input_prompt", "when", "foreach", "name", "priority", "source_id", "target_id", "submission_id", "task_id", "backend_id", "queue_type_id", "step_id")}
    return (
        f"SELECT e.{c['target_id']} AS target_id, t.{c['status']} AS status, t.{c['enabled']} AS enabled, t.{c['params']} AS params, "
        f"k.{c['input_prompt']} AS prompt, p.{c['when']} AS {quote('when')}, p.{c['foreach']} AS foreach, "
        f"f.{c['status']} AS source_status, s.{c['status']} AS submission_status, "
        # Whether any predecessor is unfinished, not how many: the newest in-edges first, as the
        # newest predecessors (a fan-out's last instances) are the likeliest to be still running, so
        # the join after a 10,000-instance fan-out is not counted 10,000 times over.
        f"(SELECT 1 FROM {edge} i JOIN {node} n ON n.{c['id']} = i.{c['source_id']} "
        f"WHERE i.{c['target_id']} = e.{c['target_id']} AND n.{c['status']} NOT IN ({', '.join(['%s'] * done_count)}) "
        f"ORDER BY i.{c['id']} DESC LIMIT 1) AS unfinished, "
        f"q.{c['name']} AS queue_type, s.{c['priority']} AS priority "
        f"FROM {edge} e JOIN {node} t ON t.{c['id']} = e.{c['target_id']} JOIN {node} f ON f.{c['id']} = e.{c['source_id']} "
        f"JOIN {submission} s ON s.{c['id']} = t.{c['submission_id']} JOIN {task} k ON k.{c['id']} = t.{c['task_id']} "
        f"JOIN {backend} b ON b.{c['id']} = k.{c['backend_id']} JOIN {queue_type} q ON q.{c['id']} = b.{c['queue_type_id']} "
        f"LEFT JOIN {step} p ON p.{c['id']} = t.{c['step_id']} "
        f"WHERE e.{c['source_id']} = %s"
    )
