"""tutorlib."""
