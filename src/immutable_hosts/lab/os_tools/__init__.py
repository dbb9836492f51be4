"""Scripts the lab puts into its OS images for a derived build (see ostree_content.add_build_tools)."""
