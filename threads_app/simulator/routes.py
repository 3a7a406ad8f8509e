"""The route table's entries: a method, a path template under /v1, an endpoint and its beta header."""

import re
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Route:
    method: str
    pattern: re.Pattern
    handler: Callable  # (app.Request) -> dict, the JSON body of a 200
    beta: str | None  # the OpenAI-Beta value the endpoint requires


def route(method: str, template: str, handler: Callable, beta: str | None = None) -> Route:
    """`template` like "/threads/{thread_id}": each {name} matches one path segment."""
    pattern = re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", template)
    return Route(method, re.compile(f"/v1{pattern}"), handler, beta)
