"""hookswitch: a self-hosted phone server with a Call Control API."""
