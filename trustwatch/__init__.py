"""trustwatch: trustwatch."""
