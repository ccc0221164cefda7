"""Programs that use hookswitch from the outside, as its users would (see the README)."""
