"""A small static web app that Screenreel records in demos and tests."""
