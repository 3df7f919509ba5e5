"""Local emulators of the services co-sell sync talks to (Partner Central, HubSpot).

Each emulator follows moto's split: ``models`` holds state and business rules with no HTTP,
``responses`` parses requests and shapes responses, ``server`` routes, and ``controls`` holds
the test-only ``/_emulator/`` endpoints, kept apart from the emulated API.
"""
