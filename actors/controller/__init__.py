"""The controller: one detached, named actor and the services it delegates to.

The actor (``actor.py``) is a thin shell; definitions, starting runs, control requests and
plugin hosting each live in a service of their own. May import every other engine package.
"""

from actorflow.actors.controller.actor import (
    CONTROLLER_NAME,
    Controller,
    ControllerPlugin,
    PluginFactory,
)
from actorflow.actors.controller.starter import request_start

__all__ = ["CONTROLLER_NAME", "Controller", "ControllerPlugin", "PluginFactory", "request_start"]
