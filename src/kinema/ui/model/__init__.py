"""The editor's view-model in parts a desktop window and a future web view share.

:class:`~kinema.ui.model.session.Session` is the open project and its footage; the parts work
on it: :mod:`transport` (playhead and playback), :mod:`history` (one undo/redo for document
and mask edits), :mod:`objects` (mask tracks as the editor shows them), :mod:`tools` (prompts
and brush strokes on a frame), :mod:`layers`, :mod:`picture` (what the viewer shows),
:mod:`jobs`, :mod:`propagation` (masks through the shot), :mod:`exports`, the Generate and
Restyle panels (:mod:`generate`, :mod:`restyle`) and style layers' keys (:mod:`style_keys`).
:class:`kinema.ui.editor.Editor` composes them. None of them draws anything.
"""
