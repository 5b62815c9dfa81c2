"""The OpenAPI document, made honest about errors (SPEC §4.1): each operation declares the
problem+json responses it can give, so schema-driven tools can check answers against it."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from starlette.routing import BaseRoute

from bastion.api.dependencies import SECURITY_SCHEMES, api_routes, security_of
from bastion.api.routing import expand
from bastion.api.schemas import Problem

PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}
UNLIMITED_PATHS = frozenset({"/health", "/ready"})
OAUTH_PATHS = frozenset({"/auth/token", "/auth/revoke"})

_DESCRIPTIONS = {
    "401": "Credentials are missing, malformed, expired, revoked or unknown",
    "403": "The credentials are good but lack a scope or role",
    "404": "No such object, or not yours",
    "415": "The body must be application/json",
    "422": "Invalid fields; `errors` names each",
    "429": "A rate limit was hit; see Retry-After",
}


def install_openapi(app: FastAPI, scopes: Callable[[], Iterable[str]]) -> None:
    """Wrap ``app.openapi`` so the document is generated once, with error responses added.
    ``scopes`` is asked when the document is made: by then every route has declared its own."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            routes = list(expand(app.routes))
            schema = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=routes,
            )
            declare_security(schema, routes)
            add_problem_responses(schema)
            declare_scopes(schema, {scope: scope for scope in sorted(scopes())})
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented override hook


def declare_security(schema: dict[str, Any], routes: Iterable[BaseRoute]) -> None:
    """Each operation's ``security`` (the schemes its ``require(...)`` accepts, as
    alternatives) and the schemes' definitions, so that the docs' Authorize dialog and
    schema-driven tools know how to call it (SPEC §4.1)."""
    schemes = schema.setdefault("components", {}).setdefault("securitySchemes", {})
    paths = schema.get("paths", {})
    for path, methods, route in api_routes(routes):
        declaration = security_of(route)
        if declaration is None or not route.include_in_schema:
            continue
        requirements = declaration.requirements()
        for method in methods:
            operation = paths.get(path, {}).get(method.lower())
            if operation is not None:
                operation["security"] = requirements
        for requirement in requirements:
            for name in requirement:
                model = SECURITY_SCHEMES[name].model
                schemes[name] = model.model_dump(mode="json", by_alias=True, exclude_none=True)


def add_problem_responses(schema: dict[str, Any]) -> None:
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    problem = Problem.model_json_schema(ref_template="#/components/schemas/{model}")
    components.update(problem.pop("$defs", {}))
    components["Problem"] = problem
    components.pop("HTTPValidationError", None)
    components.pop("ValidationError", None)
    for path, operations in schema.get("paths", {}).items():
        for operation in operations.values():
            for status in _problem_statuses(path, operation):
                _declare(operation, status)


def _problem_statuses(path: str, operation: dict[str, Any]) -> list[str]:
    statuses = []
    if operation.get("security"):
        statuses += ["401", "403"]
    if "{" in path:
        statuses.append("404")
    if "requestBody" in operation and path not in OAUTH_PATHS:
        statuses.append("415")
    if operation.get("parameters") or ("requestBody" in operation and path not in OAUTH_PATHS):
        statuses.append("422")
    if path not in UNLIMITED_PATHS:
        statuses.append("429")
    return statuses


def _declare(operation: dict[str, Any], status: str) -> None:
    responses = operation.setdefault("responses", {})
    responses[status] = {
        "description": _DESCRIPTIONS[status],
        "content": {"application/problem+json": {"schema": PROBLEM_REF}},
    }


def declare_scopes(schema: dict[str, Any], scopes: dict[str, str]) -> None:
    """List the server's scopes in the password flow, so the docs' Authorize dialog offers them."""
    schemes = schema.get("components", {}).get("securitySchemes", {})
    for scheme in schemes.values():
        password_flow = scheme.get("flows", {}).get("password")
        if password_flow is not None:
            password_flow["scopes"] = dict(scopes)
