"""Use cases the surfaces (CLI, editor) call: each composes capabilities, reports progress."""
