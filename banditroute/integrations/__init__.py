"""banditroute inside other tools. Each integration imports its tool itself, so the base install needs none of them."""
