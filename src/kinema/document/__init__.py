"""The project document: model (pydantic), migrations, and the project folder on disk."""
