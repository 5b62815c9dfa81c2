"""Bastion's own routes, tried as one route ahead of the app's.

They must come first: an app's catch-all (a SPA fallback, ``StaticFiles`` at ``/``) would
otherwise hide the login and the probes. But FastAPI tries routes in order, and in 0.165 trying
one costs about a microsecond, so twenty routes ahead of the app's would charge every request
of the app ~15 µs for routes it never calls (measured; SPEC §8). As one :class:`RouteGroup`
they cost one ``str.startswith`` against the literal heads of their paths; only a path that
begins like one of them goes on to the routes' own matching, which stays theirs (methods, 405s,
path parameters, trailing-slash redirects).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from starlette._utils import get_route_path
from starlette.routing import BaseRoute, Match, NoMatchFound
from starlette.types import Receive, Scope, Send

_MATCHED = "bastion.route"
"""The scope key that carries the matched route from :meth:`RouteGroup.matches` to
:meth:`RouteGroup.handle`: the router updates the scope with the child scope in between."""


class RouteGroup(BaseRoute):
    def __init__(self, routes: Sequence[BaseRoute]) -> None:
        self.routes = list(routes)
        self._heads = tuple(sorted({_literal_head(route) for route in self.routes}))

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if scope["type"] not in ("http", "websocket"):
            return Match.NONE, {}
        if not get_route_path(scope).startswith(self._heads):
            return Match.NONE, {}
        partial: tuple[BaseRoute, Scope] | None = None
        for route in self.routes:
            match, child_scope = route.matches(scope)
            if match is Match.FULL:
                return match, {**child_scope, _MATCHED: route}
            if match is Match.PARTIAL and partial is None:
                partial = (route, child_scope)
        if partial is not None:
            route, child_scope = partial
            return Match.PARTIAL, {**child_scope, _MATCHED: route}
        return Match.NONE, {}

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        route: BaseRoute = scope.pop(_MATCHED)
        await route.handle(scope, receive, send)

    def url_path_for(self, name: str, /, **path_params: Any) -> Any:
        for route in self.routes:
            try:
                return route.url_path_for(name, **path_params)
            except NoMatchFound:
                continue
        raise NoMatchFound(name, path_params)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({len(self.routes)} routes: {', '.join(self._heads)})"


def _literal_head(route: BaseRoute) -> str:
    """The part of a route's path before its first parameter: every path it matches starts
    so. A route without a path (of a kind unknown here) gets ``""``, which every path starts
    with, so it is always tried, never skipped."""
    path = getattr(route, "path", None)
    return path.split("{", 1)[0] if isinstance(path, str) else ""


def expand(routes: Iterable[BaseRoute]) -> Iterator[BaseRoute]:
    """The routes with every group's own in its place: what the OpenAPI document and the
    scopes the app requires are made from."""
    for route in routes:
        if isinstance(route, RouteGroup):
            yield from expand(route.routes)
        else:
            yield route
