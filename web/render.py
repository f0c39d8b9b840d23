"""Templates (Jinja2, autoescaped) and the few filters they need."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import pycountry
from jinja2 import Environment, FileSystemLoader, StrictUndefined
from markupsafe import Markup, escape

from models.figures import MILESTONES

COUNTRIES: tuple[tuple[str, str], ...] = tuple(
    sorted(
        (
            (country.alpha_2, getattr(country, "common_name", country.name))
            for country in pycountry.countries
        ),
        key=lambda pair: pair[1],
    )
)


def paragraphs(text: str | None) -> Markup:
    """Plain text as paragraphs: a blank line between two, a line break kept within one."""
    if not text:
        return Markup("")
    blocks = [block.strip() for block in text.replace("\r\n", "\n").split("\n\n")]
    return Markup("\n").join(
        Markup("<p>{}</p>").format(
            Markup("<br>\n").join(escape(line) for line in block.split("\n"))
        )
        for block in blocks
        if block
    )


def day(value: str | None) -> str:
    """An ISO date-time as a person reads a date: 3 December 2025."""
    if not value:
        return ""
    moment = datetime.fromisoformat(value)
    return f"{moment.day} {moment:%B %Y}"


def progress_target(count: int, goal: int | None) -> tuple[int | None, str]:
    """What the progress bar measures against, and its name: the goal where one is set, else
    the next milestone (none past the last)."""
    if goal:
        return goal, "goal"
    for milestone in MILESTONES:
        if count < milestone:
            return milestone, "next milestone"
    return None, ""


environment = Environment(
    loader=FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=True,
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
environment.filters["paragraphs"] = paragraphs
environment.filters["day"] = day
environment.globals["countries"] = COUNTRIES
environment.globals["progress_target"] = progress_target


def render(template: str, **values: Any) -> str:
    return environment.get_template(template).render(**values)
