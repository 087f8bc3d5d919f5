"""kopf handlers over the engine and the adapters: observe, decide, apply, record."""
