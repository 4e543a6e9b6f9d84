"""Endpoint discovery: a static ``--endpoints`` list, or an InferencePool in Kubernetes."""
