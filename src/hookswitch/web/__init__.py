"""The user portal: server-rendered pages (Jinja2) for people with a phone on hookswitch."""
