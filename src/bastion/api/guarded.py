"""A route class that runs ``require()`` itself, before FastAPI solves the rest of the route.

FastAPI's dependency solving costs an authenticated route about as much as verifying its token
(SPEC §8: ~70k instructions for one dependency giving the principal, measured with a dependency
that returns a constant). :class:`GuardedRoute` takes the ``require()`` dependencies out of what
FastAPI solves, the route's ``dependencies=[...]`` and the endpoint's parameters alike, runs them
in :meth:`GuardedRoute.handle`, and hands their principals to the endpoint through a wrapper.

What a caller sees stays what FastAPI would give, with one change for the better: a wrong method
is still a 405 before anything else, but a request without valid credentials is refused (401)
before its body or parameters are read or validated (FastAPI would report a malformed JSON body
as a 422 first, telling an anonymous caller about the route's input). The OpenAPI document, the
route's name, summary, response model and ``app.dependency_overrides`` are honoured as before.

It falls back to FastAPI's own solving, unchanged, where the wrapper could not keep that promise:
a plain ``def`` or generator endpoint (FastAPI runs those in a thread or streams them), or
annotations that do not resolve (FastAPI then raises its own error).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AsyncExitStack
from contextvars import ContextVar
from typing import Annotated, Any, get_args, get_origin

from fastapi import Depends, params
from fastapi.dependencies.utils import (
    get_dependant,
    get_typed_return_annotation,
    get_typed_signature,
    solve_dependencies,
)
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.types import Receive, Scope, Send

from bastion.api.dependencies import SecurityDeclaration
from bastion.principal import Principal

GuardCall = Callable[[Request], Awaitable[Principal]]

_granted: ContextVar[tuple[object, dict[str, Principal]] | None] = ContextVar(
    "bastion_granted", default=None
)
"""The principals :meth:`GuardedRoute.handle` found, for the endpoint's wrapper to pass on, with
the key of the route they were found for: a wrapper never takes another route's principals."""


class GuardNotRun(RuntimeError):
    """A guarded endpoint was called without its route's guards having run: refused, never
    called with no principal (fail closed). Only code that calls a route's handler directly,
    bypassing ``handle()``, can get here."""


def guard_of(dependency: object) -> GuardCall | None:
    """The ``require()`` call behind a ``Depends(...)``, if that is what it is."""
    if not isinstance(dependency, params.Depends) or isinstance(dependency, params.Security):
        return None
    call = dependency.dependency
    if isinstance(getattr(call, "bastion_security", None), SecurityDeclaration):
        return call
    return None


def _parameter_guard(parameter: inspect.Parameter) -> GuardCall | None:
    """The guard a parameter declares, read as FastAPI reads it: the last of the FastAPI
    markers in ``Annotated[...]``, else the default."""
    annotation = parameter.annotation
    if get_origin(annotation) is Annotated:
        markers = [
            arg
            for arg in get_args(annotation)[1:]
            if isinstance(arg, params.Depends | params.Param)
        ]
        if markers:
            return guard_of(markers[-1])
    return guard_of(parameter.default)


class GuardedRoute(APIRoute):
    """An :class:`~fastapi.routing.APIRoute` whose ``require()`` dependencies run before FastAPI
    solves the rest. :meth:`bastion.Bastion.protect` makes it the app's route class; give it to
    your own routers as ``APIRouter(route_class=GuardedRoute)``."""

    bastion_guards: tuple[GuardCall, ...]
    """Every guard this route runs, once each, in the order FastAPI would have run them."""

    def __init__(
        self,
        path: str,
        endpoint: Callable[..., Any],
        *,
        dependencies: Sequence[params.Depends] | None = None,
        **options: Any,
    ) -> None:
        self._key = object()
        split = _split(endpoint, dependencies or (), self._key)
        if split is None:
            self.bastion_guards = ()
            self._fills: dict[str, GuardCall] = {}
            super().__init__(path, endpoint, dependencies=dependencies, **options)
            return
        wrapper, remaining, route_guards, fills = split
        self.bastion_guards = tuple(dict.fromkeys([*route_guards, *fills.values()]))
        self._fills = fills
        super().__init__(path, wrapper, dependencies=remaining, **options)

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        methods = self.methods
        if not self.bastion_guards or (methods and scope["method"] not in methods):
            await super().handle(scope, receive, send)  # FastAPI's own 405
            return
        request = Request(scope, receive, send)
        overrides = getattr(scope.get("app"), "dependency_overrides", None)
        if overrides and any(guard in overrides for guard in self.bastion_guards):
            async with AsyncExitStack() as stack:
                found = {
                    guard: await _overridden(request, overrides.get(guard), guard, stack)
                    for guard in self.bastion_guards
                }
                await self._handle_granted(found, scope, receive, send)
            return
        found = {guard: await guard(request) for guard in self.bastion_guards}
        await self._handle_granted(found, scope, receive, send)

    async def _handle_granted(
        self, found: dict[GuardCall, Principal], scope: Scope, receive: Receive, send: Send
    ) -> None:
        granted = {name: found[guard] for name, guard in self._fills.items()}
        token = _granted.set((self._key, granted))
        try:
            await super().handle(scope, receive, send)
        finally:
            _granted.reset(token)


async def _overridden(
    request: Request, override: Callable[..., Any] | None, guard: GuardCall, stack: AsyncExitStack
) -> Any:
    """What an ``app.dependency_overrides`` entry gives in a guard's place, solved by FastAPI
    itself (its own parameters, a thread for a plain ``def``, ``yield`` closed after the
    response), as it would have been without this route class."""
    if override is None:
        return await guard(request)

    # a default, not ``Annotated``: this module's annotations are strings, and ``override``
    # is local, which FastAPI could not resolve
    async def receive_override(value: Any = Depends(override)) -> Any:  # noqa: B008
        return value

    scope = request.scope
    # FastAPI's handler sets these for its own solving, later; the override's ``yield`` closes
    # with ``stack``, after the response, as a guard's would have
    scope["fastapi_inner_astack"] = scope["fastapi_function_astack"] = stack
    try:
        solved = await solve_dependencies(
            request=request,
            dependant=get_dependant(path="", call=receive_override),
            async_exit_stack=stack,
            embed_body_fields=False,
            dependency_overrides_provider=scope.get("app"),
        )
    finally:
        del scope["fastapi_inner_astack"], scope["fastapi_function_astack"]
    if solved.errors:
        raise RequestValidationError(solved.errors)
    return solved.values["value"]


def _split(
    endpoint: Callable[..., Any], dependencies: Sequence[params.Depends], key: object
) -> tuple[Callable[..., Any], list[params.Depends], list[GuardCall], dict[str, GuardCall]] | None:
    """The endpoint FastAPI is to see, the dependencies it still solves, the route's guards and
    the parameters guards fill; ``None`` where FastAPI keeps the route to itself."""
    route_guards = [guard for dependency in dependencies if (guard := guard_of(dependency))]
    remaining = [dependency for dependency in dependencies if guard_of(dependency) is None]
    if not inspect.iscoroutinefunction(endpoint):
        return None
    try:
        signature = get_typed_signature(endpoint)
        returns = get_typed_return_annotation(endpoint)
    except Exception:  # FastAPI will raise its own, clearer error for the route
        return None
    fills: dict[str, GuardCall] = {}
    kept: list[inspect.Parameter] = []
    for parameter in signature.parameters.values():
        guard = _parameter_guard(parameter)
        if guard is None:
            kept.append(parameter)
        elif parameter.kind is inspect.Parameter.POSITIONAL_ONLY:
            return None
        else:
            fills[parameter.name] = guard
    if not route_guards and not fills:
        return None

    @functools.wraps(endpoint)
    async def guarded_endpoint(**values: Any) -> Any:
        granted = _granted.get()
        if granted is None or granted[0] is not key:
            raise GuardNotRun(f"{endpoint.__qualname__} called without its route's guards")
        return await endpoint(**values, **granted[1])

    guarded_endpoint.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        kept, return_annotation=inspect.Signature.empty if returns is None else returns
    )
    return guarded_endpoint, remaining, route_guards, fills
