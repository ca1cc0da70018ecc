"""`actorflow serve`: the REST API on 127.0.0.1:ACTORFLOW_API_PORT.

Registered on the main app by `actorflow.cli`; errors go to its one-line reporter.
"""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer
from rich.console import Console

from actorflow.cluster.settings import Settings
from actorflow.server import serve as serve_api

out = Console()


def serve(
    port: Annotated[
        int | None,
        typer.Option("--port", "-p", min=0, max=65535, help="Instead of ACTORFLOW_API_PORT."),
    ] = None,
) -> None:
    """Serve the REST API (and its OpenAPI document at /docs) until interrupted."""
    settings = Settings()
    if port is not None:
        settings = settings.model_copy(update={"api_port": port})

    def ready(url: str) -> None:
        out.print(f"actorflow API on {url}  (OpenAPI: {url}/docs)", highlight=False)

    asyncio.run(serve_api(settings, on_ready=ready))


def register(app: typer.Typer) -> None:
    app.command()(serve)
