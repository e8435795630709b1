"""trustwatch: collectors."""
