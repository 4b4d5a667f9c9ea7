"""The face front end: the first step wherever an image file becomes a tensor (detect, 5 landmarks, align)."""
