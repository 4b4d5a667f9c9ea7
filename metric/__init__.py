"""Face verification by metric learning. Rooms, in the order data flows (a lower room never imports a higher one):

model -> scoring -> metrics -> report -> attacks -> modules | deploy | baselines, with `python -m metric.<entry>`
entry points on top; see docs/architecture.md.
"""
