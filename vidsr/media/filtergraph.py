"""FFmpeg filter graphs over decoded frames, the small part every user of them shares."""

from __future__ import annotations

from fractions import Fraction

import av


def build(
    first: av.VideoFrame, time_base: Fraction, *filters: tuple[str, str | None], rate: Fraction | None = None
) -> av.filter.Graph:
    """buffer -> filters -> buffersink, shaped by the first frame (its size and pixel format).

    ``rate``: the frame rate the buffer states, for filters that need one (decimate); PyAV's
    ``add_buffer`` cannot state it, so the buffer is then added by its FFmpeg options."""
    graph = av.filter.Graph()
    if rate is None:
        source = graph.add_buffer(width=first.width, height=first.height, format=first.format, time_base=time_base)
    else:
        source = graph.add(
            "buffer",
            video_size=f"{first.width}x{first.height}",
            pix_fmt=str(first.format.name),
            time_base=str(time_base),
            pixel_aspect="1/1",
            frame_rate=str(rate),
        )
    nodes = [source, *(graph.add(name, args) for name, args in filters), graph.add("buffersink")]
    graph.link_nodes(*nodes).configure()
    return graph


def drain(graph: av.filter.Graph) -> list[av.VideoFrame]:
    """Every frame the graph has ready (none while its filters wait for more input)."""
    out = []
    while True:
        try:
            out.append(graph.vpull())
        except (av.error.BlockingIOError, av.error.EOFError):
            return out
