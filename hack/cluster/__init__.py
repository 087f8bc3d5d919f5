"""The local control plane for tests and the demo (see ARCHITECTURE.md section 6)."""
