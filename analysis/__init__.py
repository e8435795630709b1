"""trustwatch: analysis."""
