"""The HTTP API and the operator web console (``thunderline serve``).

``create_app(settings)`` builds the ASGI application: the ``/v1`` API (OpenAPI at
``/openapi.json``), ``/healthz``, ``/readyz``, ``/metrics`` and the console at ``/``. On the
embedded defaults the whole pipeline runs in the same process (:class:`ApiService`).
"""

from thunderline.api.app import create_app
from thunderline.api.service import ApiService
from thunderline.api.tokens import Scope, TokenRecord, TokenStore, hash_token

__all__ = ["ApiService", "Scope", "TokenRecord", "TokenStore", "create_app", "hash_token"]
