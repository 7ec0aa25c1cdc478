"""Sockets and HTTP: chunk server and client, pacing, congestion, TLS, status endpoints."""
