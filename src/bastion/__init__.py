"""Bastion: a secure-by-default security layer for FastAPI (see SPEC.md).

The public API is what this module exports; everything else may change between releases.
"""

from bastion.api.dependencies import require
from bastion.api.guarded import GuardedRoute
from bastion.core import Bastion, ConfigurationError
from bastion.errors import BastionError
from bastion.principal import CredentialKind, Principal
from bastion.settings import BastionSettings

__all__ = [
    "Bastion",
    "BastionError",
    "BastionSettings",
    "ConfigurationError",
    "CredentialKind",
    "GuardedRoute",
    "Principal",
    "require",
]
