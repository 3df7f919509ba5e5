"""Pieces shared by the emulators: a threaded WSGI server that starts on port 0."""
