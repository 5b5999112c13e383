"""``kinema serve`` (a surface beside ``kinema.cli`` and ``kinema.ui``; empty so far): an HTTP
worker with token auth that runs the same job specs as the other surfaces, so a laptop can send
heavy model work to a GPU box. Like every surface it parses input, reports progress and calls
``kinema.app``; it never imports another surface.
"""
