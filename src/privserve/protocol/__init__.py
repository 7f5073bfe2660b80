"""The OpenAI wire types: pydantic models with OpenAI's names, below api/ and services/."""
