"""The HTTP API and the operator web console (``thunderline serve``).

``create_app(settings)`` builds the ASGI application: the ``/v1`` API (OpenAPI at
``/openapi.json``), ``/healthz``, ``/readyz``, ``/metrics`` and the console at ``/``. On the
embedded defaults the whole pipeline runs in the same process (:class:`ApiService`); with
``TL_BUS_URL=amqp://…`` the service submits to the scale-out workers and reads the outcomes
their collector records (:class:`OutcomeFollower` feeds the live view).
"""

from thunderline.api.app import create_app
from thunderline.api.follow import OutcomeFollower
from thunderline.api.service import ApiService
from thunderline.api.tokens import Scope, TokenRecord, TokenStore, hash_token

__all__ = [
    "ApiService",
    "OutcomeFollower",
    "Scope",
    "TokenRecord",
    "TokenStore",
    "create_app",
    "hash_token",
]
