"""Deployment support: the repository's env files, Kubernetes rendering and validation."""
