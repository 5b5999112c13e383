"""Broadcast (a capability; empty so far): a channel's rundown and pacing, and muxing finished
segments to RTMP or HLS with PyAV. Use cases that feed it live in ``kinema.app``.
"""
