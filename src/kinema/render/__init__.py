"""Rendering: the compositor that turns a project's layers into frames."""
