"""Token-bucket rate limits for the guest's frames (reference §12), sans-IO."""
