"""The examples are separate user projects; each folder's modules are imported by path."""
