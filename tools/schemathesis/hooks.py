"""Schemathesis hooks for tools/schemathesis/run: POST /v1/commands takes
application/x-ndjson, which schemathesis cannot serialize by itself; the generated body (a
string, as the document describes it) is sent as it is."""

import json

import schemathesis


@schemathesis.serializer("application/x-ndjson")
def ndjson(ctx, value):
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode("utf-8", "surrogatepass")
    return (json.dumps(value) + "\n").encode()
