"""Schemathesis hooks for tools/schemathesis/run.

POST /v1/commands takes application/x-ndjson, which schemathesis cannot serialize by itself;
the generated body (a string, as the document describes it) is sent as it is.

POST /v1/reconcile/detail and GET /v1/export/{table} take a period, `from` to `to`: each a day
the document describes, and `to` not before `from`, which a document cannot say of two
parameters. A generated pair
the wrong way round is put the right way round (the server's refusal of a reversed period, 400,
is tested in tests/server_routes.rs and tests/server_export.rs)."""

import json
import re

import schemathesis

DAY = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")


@schemathesis.serializer("application/x-ndjson")
def ndjson(ctx, value):
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode("utf-8", "surrogatepass")
    return (json.dumps(value) + "\n").encode()


def in_order(query):
    """The period `from` to `to` of a generated query, the right way round."""
    if not isinstance(query, dict):
        return query
    start, end = query.get("from"), query.get("to")
    days = all(isinstance(day, str) and DAY.match(day) for day in (start, end))
    if days and start > end:
        query["from"], query["to"] = end, start
    return query


@schemathesis.hook("map_query").apply_to(path="/v1/reconcile/detail")
def period_in_order(ctx, query):
    return in_order(query)


@schemathesis.hook("map_query").apply_to(path="/v1/export/{table}")
def export_period_in_order(ctx, query):
    return in_order(query)
