"""dlapps.transfer (under construction)."""
