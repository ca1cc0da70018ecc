"""Handlers for the hello-world workflow."""


def greet(name: str) -> str:
    return f"Hello, {name}!"


def shout(text: str) -> str:
    return text.upper()
