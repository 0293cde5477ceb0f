"""Origins the edge integration tests run as processes of their own."""
