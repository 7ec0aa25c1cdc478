"""Static files served by the nodes (the HTML status page)."""
