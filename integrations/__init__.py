"""oomguard integrations."""
