"""Segmentation and tracking: from a click, a box, a mask or words to masks that follow an object."""
