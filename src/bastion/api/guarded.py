"""A route class that runs ``require()`` itself, before FastAPI solves the rest of the route.

FastAPI's dependency solving costs an authenticated route about as much as verifying its token
(SPEC §8: ~70k instructions for one dependency giving the principal, measured with a dependency
that returns a constant). :class:`GuardedRoute` takes the ``require()`` dependencies that FastAPI
would solve first (the route's ``dependencies=[...]`` and the endpoint's parameters, up to the
first dependency of another kind, so that the declared order holds) out of what FastAPI solves,
runs them in :meth:`GuardedRoute.handle`, and gives their principals to the endpoint through a
wrapper.

The wrapper asks the guards itself: each remembers its principal for the rest of the request
(:data:`bastion.api.dependencies.GRANTED`), so after ``handle()`` this costs a lookup, and an
endpoint reached any other way (a route rebuilt from ``route.endpoint``, say) is still guarded,
never called without its principal (fail closed). The same memory keeps a guard that FastAPI
still solves (in a sub-dependency, or a router's ``dependencies``) from counting the request
against the limits twice.

What a caller sees stays what FastAPI would give, with one change for the better: a wrong method
is still a 405 before anything else, but a request without valid credentials is refused (401)
before its body or parameters are read or validated (FastAPI would report a malformed JSON body
as a 422 first, telling an anonymous caller about the route's input). The OpenAPI document, the
route's name, summary and response model, and ``app.dependency_overrides`` hold as before.

FastAPI keeps the route to itself, unchanged, where the wrapper could not keep that promise: a
plain ``def`` or generator endpoint (FastAPI runs those in a thread or streams them), a guard
declared after another dependency, or annotations that do not resolve (FastAPI then raises its
own error).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass
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

from bastion.api.dependencies import GRANTED, SecurityDeclaration
from bastion.principal import Principal

GuardCall = Callable[[Request], Awaitable[Principal]]

REQUEST_PARAMETER = "bastion_guarded_request_"
"""The wrapper's own parameter: FastAPI hands it the request, for the guards."""

_NOT_FOUND = object()


def guard_of(dependency: object) -> GuardCall | None:
    """The ``require()`` call behind a ``Depends(...)``, if that is what it is (not under
    ``Security(...)``: its scopes are FastAPI's to give)."""
    if not isinstance(dependency, params.Depends) or isinstance(dependency, params.Security):
        return None
    call = dependency.dependency
    if isinstance(getattr(call, "bastion_security", None), SecurityDeclaration):
        return call
    return None


def _marker(parameter: inspect.Parameter) -> object:
    """The FastAPI marker of a parameter, read as FastAPI reads it: the last one in
    ``Annotated[...]``, else the default."""
    annotation = parameter.annotation
    if get_origin(annotation) is Annotated:
        markers = [
            arg
            for arg in get_args(annotation)[1:]
            if isinstance(arg, params.Depends | params.Param)
        ]
        if markers:
            return markers[-1]
    return parameter.default


def _is_request(annotation: object) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, Request)


@dataclass(frozen=True, slots=True)
class _Split:
    endpoint: Callable[..., Any]
    """What FastAPI is given: the endpoint without the lifted guards' parameters."""
    dependencies: list[params.Depends]
    """The route's dependencies FastAPI still solves."""
    guards: tuple[GuardCall, ...]
    """The lifted guards, once each, in FastAPI's order."""


class GuardedRoute(APIRoute):
    """An :class:`~fastapi.routing.APIRoute` whose leading ``require()`` dependencies run before
    FastAPI solves the rest. :meth:`bastion.Bastion.protect` makes it the app's route class;
    give it to your own routers as ``APIRouter(route_class=GuardedRoute)``."""

    bastion_guards: tuple[GuardCall, ...]
    """Every guard this route runs itself, once each, in the order FastAPI would have."""

    def __init__(
        self,
        path: str,
        endpoint: Callable[..., Any],
        *,
        dependencies: Sequence[params.Depends] | None = None,
        **options: Any,
    ) -> None:
        split = _split(endpoint, list(dependencies or ()))
        if split is None:
            self.bastion_guards = ()
            super().__init__(path, endpoint, dependencies=dependencies, **options)
            return
        self.bastion_guards = split.guards
        super().__init__(path, split.endpoint, dependencies=split.dependencies, **options)

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        guards = self.bastion_guards
        methods = self.methods
        if not guards or (methods and scope["method"] not in methods):
            await super().handle(scope, receive, send)  # FastAPI's own 405
            return
        request = Request(scope, receive, send)
        overrides = getattr(scope.get("app"), "dependency_overrides", None)
        if overrides and any(guard in overrides for guard in guards):
            async with AsyncExitStack() as stack:
                for guard in guards:
                    await _run_or_override(request, guard, overrides.get(guard), stack)
                await super().handle(scope, receive, send)
            return
        for guard in guards:
            await guard(request)
        await super().handle(scope, receive, send)


async def _run_or_override(
    request: Request, guard: GuardCall, override: Callable[..., Any] | None, stack: AsyncExitStack
) -> None:
    """Run ``guard``, or solve the ``app.dependency_overrides`` entry standing in for it and
    give its value to the endpoint in the guard's place. FastAPI itself solves the override
    (its own parameters, a thread for a plain ``def``, ``yield`` closed after the response),
    but on its own: a dependency it shares with the endpoint runs for each, and it cannot take
    the request's body (README, "Using Bastion in your own app")."""
    if override is None:
        await guard(request)
        return

    # a default, not ``Annotated``: this module's annotations are strings, and ``override``
    # is local, which FastAPI could not resolve
    async def receive_override(value: Any = Depends(override)) -> Any:  # noqa: B008
        return value

    scope = request.scope
    keys = ("fastapi_inner_astack", "fastapi_function_astack")
    previous = {key: scope.get(key, _NOT_FOUND) for key in keys}
    # FastAPI's handler sets these for its own solving, later
    scope.update(dict.fromkeys(keys, stack))
    try:
        solved = await solve_dependencies(
            request=request,
            dependant=get_dependant(path="", call=receive_override),
            async_exit_stack=stack,
            embed_body_fields=False,
            dependency_overrides_provider=scope.get("app"),
        )
    finally:
        for key, value in previous.items():
            if value is _NOT_FOUND:
                scope.pop(key, None)
            else:
                scope[key] = value
    if solved.errors:
        raise RequestValidationError(solved.errors)
    scope.setdefault(GRANTED, {})[guard] = solved.values["value"]


def _split(endpoint: Callable[..., Any], dependencies: list[params.Depends]) -> _Split | None:
    """How FastAPI is to see the route, or ``None`` where it keeps the route to itself."""
    if not inspect.iscoroutinefunction(endpoint):
        return None
    try:
        signature = get_typed_signature(endpoint)
        returns = get_typed_return_annotation(endpoint)
    except Exception:  # FastAPI will raise its own, clearer error for the route
        return None
    parameters = list(signature.parameters.values())
    if REQUEST_PARAMETER in signature.parameters or any(
        p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) for p in parameters
    ):
        return None
    # FastAPI solves the route's dependencies, then the parameters' in order; the guards that
    # come before any other dependency can run first without changing what runs before what
    ordered: list[tuple[params.Depends, inspect.Parameter | None]] = [
        (dependency, None) for dependency in dependencies
    ]
    ordered += [
        (marker, parameter)
        for parameter in parameters
        if isinstance(marker := _marker(parameter), params.Depends)
    ]
    lifted: list[tuple[GuardCall, inspect.Parameter | None]] = []
    for dependency, parameter in ordered:
        if (guard := guard_of(dependency)) is None:
            break
        if parameter is not None and parameter.kind is inspect.Parameter.POSITIONAL_ONLY:
            return None
        lifted.append((guard, parameter))
    if not lifted:
        return None
    route_level = sum(1 for _, parameter in lifted if parameter is None)
    fills = {parameter.name: guard for guard, parameter in lifted if parameter is not None}
    guards = tuple(dict.fromkeys(guard for guard, _ in lifted))

    kept = [parameter for parameter in parameters if parameter.name not in fills]
    # FastAPI gives the request to one parameter only: the endpoint's own, if it has one
    own = next((p.name for p in kept if _is_request(p.annotation)), None)
    request_name = own or REQUEST_PARAMETER

    @functools.wraps(endpoint)
    async def guarded_endpoint(**values: Any) -> Any:
        request: Request = values[request_name] if own else values.pop(request_name)
        # after handle(), each guard answers from the request's memory (GRANTED)
        granted = {guard: await guard(request) for guard in guards}
        for name, guard in fills.items():
            values[name] = granted[guard]
        return await endpoint(**values)

    # FastAPI names the route after the endpoint (a partial has no __name__ of its own)
    guarded_endpoint.__name__ = getattr(endpoint, "__name__", type(endpoint).__name__)
    hidden = inspect.Parameter(
        REQUEST_PARAMETER, inspect.Parameter.KEYWORD_ONLY, annotation=Request
    )
    guarded_endpoint.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        kept if own else [*kept, hidden],
        return_annotation=inspect.Signature.empty if returns is None else returns,
    )
    return _Split(guarded_endpoint, dependencies[route_level:], guards)
