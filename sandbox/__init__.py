"""trustwatch: sandbox."""
