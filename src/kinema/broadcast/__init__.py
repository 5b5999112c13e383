"""Broadcast (a capability): keeping a channel on air.

- :mod:`kinema.broadcast.playlist`: the rolling playlist of finished segments in a state folder
  (queue, on air, history; repeats the least recently aired segment when the queue runs dry).
- :mod:`kinema.broadcast.live`: the broadcaster that re-encodes segments to one channel format,
  paced to real time, and muxes the stream once encoded to RTMP (FLV, reconnecting) and HLS.
- :mod:`kinema.broadcast.nginx`: a private nginx with the RTMP module on 127.0.0.1.

Use cases that feed it (writing, filming, scoring a channel) live in ``kinema.app``. PyAV is
imported inside the functions that need it.
"""

from kinema.broadcast.live import Broadcaster, BroadcastResult, ChannelFormat
from kinema.broadcast.nginx import NginxError, NginxRtmp, nginx_missing
from kinema.broadcast.playlist import Playlist, PlaylistStatus, Segment

__all__ = ["BroadcastResult", "Broadcaster", "ChannelFormat", "NginxError", "NginxRtmp",
           "Playlist", "PlaylistStatus", "Segment", "nginx_missing"]
