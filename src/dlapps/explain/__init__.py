"""dlapps.explain (under construction)."""
