"""trustwatch: models."""
