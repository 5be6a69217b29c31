"""Request and response shapes of the API (pydantic), kept apart from the tables."""
