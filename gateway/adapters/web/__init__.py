"""The operations console: a server-rendered web app (Starlette, Jinja2, uvicorn)."""
