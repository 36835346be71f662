"""Signing: petitions are created and signed here; events leave through the outbox."""
