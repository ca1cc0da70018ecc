"""The REST API: an ASGI service (FastAPI) over the engine's `AsyncClient`.

May import the SDK client and the store's readers; never an actor. Started by
`actorflow serve`; the routes are under ``/api/v1`` (docs/api.md, docs/openapi.json).
"""

from actorflow.server.app import MAX_BODY, create_app, openapi_document
from actorflow.server.serve import serve

__all__ = ["MAX_BODY", "create_app", "openapi_document", "serve"]
