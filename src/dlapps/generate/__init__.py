"""dlapps.generate (under construction)."""
