"""The desktop editor: a view-model over the document and jobs, drawn with Dear ImGui."""
