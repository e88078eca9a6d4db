"""The Pyramid edge: web.Api, problem+json, API keys, OpenAPI, the app factory and /docs."""
