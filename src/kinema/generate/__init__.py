"""Generation (a capability; empty so far): arrays in, arrays out, no file I/O.

Image generation and inpainting (with ControlNet and LoRA), keyframe restyle inside a matte,
propagation of styled keys through a shot, frame interpolation, upscaling, video diffusion in
sliding windows, text-to-video and music. Pixels outside a matte are never touched. Backends
register for their task in ``kinema.models``; use cases that run them live in ``kinema.app``.
"""
