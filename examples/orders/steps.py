"""Handlers of the orders example: plain functions of their inputs."""

from __future__ import annotations

VAT = {"eu": 0.2, "uk": 0.2, "us": 0.0}


def price(amount: float, region: str) -> dict[str, float]:
    """The order's total with the region's tax (unknown regions pay none)."""
    tax = round(amount * VAT.get(region, 0.0), 2)
    return {"net": amount, "tax": tax, "total": round(amount + tax, 2)}


def receipt(order: str, total: float) -> str:
    return f"receipt for {order}: {total:.2f}"
