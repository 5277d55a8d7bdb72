"""The synthetic pedestrian world: the embedded default dataset, generated offline.

Each identity is a procedurally drawn pedestrian carrying the Market-1501
attribute schema plus traits no attribute names; cameras, scenery and season
come from the world seed. The output is the Market-1501 layout with a
``market_attribute.mat``, read back by ``load_market1501``.

One module per job: ``palette`` (seeded streams, colours), ``people`` (priors,
``Person`` sampling), ``draw`` (the figure and its body parts), ``render``
(cameras, backgrounds, occluders, shooting pictures) and ``world``
(``generate_world``: process pool, Market layout, attribute file).
"""

from __future__ import annotations

from .people import Person, make_person
from .render import Camera, World, make_world, render_distractor, render_person
from .world import generate_world

__all__ = [
    "Camera",
    "Person",
    "World",
    "generate_world",
    "make_person",
    "make_world",
    "render_distractor",
    "render_person",
]
