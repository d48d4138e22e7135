"""What every app's admin shares (base: actions that check their permission, confirmation pages, the
audit) and the two ready-made groups of operators (groups)."""
