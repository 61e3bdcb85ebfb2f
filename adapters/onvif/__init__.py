"""ONVIF cameras.

- ``driver``: ``OnvifCamera`` (connect, clock, profiles, stream/snapshot URIs, PTZ presets,
  relay outputs, ``probe()``), built on onvif-zeep-async.
- ``events``: topic registry, message parsers and the PullPoint subscription manager.
- ``video`` / ``grab``: OpenCV video quality checks and frame grabbing.

Nothing is imported here, so the video checks do not pay for loading the SOAP stack.
"""
